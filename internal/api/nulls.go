package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// checkNulls refuses a null in body (one JSON object that has decoded into
// v, its keys checked) wherever the OpenAPI description says no null goes:
// as the value of a field of v that is no pointer (schemaOf marks pointers
// nullable, and nothing else), and anywhere inside a field's value.
// encoding/json leaves a field as it was for a null, so {"reason":null}
// would read as no reason given and revoke for "unspecified", and
// {"ttl":null} would make a token that never expires: a wrong type, which
// the API refuses with 400 and changes nothing for.
func checkNulls(body []byte, v any) error {
	types := fieldTypes(reflect.TypeOf(v))
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil // decode has answered this already
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := kt.(string)
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		t, known := types[key]
		switch tok {
		case nil:
			if known && t.Kind() == reflect.Pointer {
				continue
			}
			want := "a value"
			if known {
				want = jsonKind(t)
			}
			return badf("field %q: want %s, got null", key, want)
		case json.Delim('{'), json.Delim('['):
			for depth := 1; depth > 0; {
				tok, err := dec.Token()
				if err != nil {
					return nil
				}
				switch tok {
				case nil:
					return badf("field %q: holds a null, which no request of this API takes", key)
				case json.Delim('{'), json.Delim('['):
					depth++
				case json.Delim('}'), json.Delim(']'):
					depth--
				}
			}
		}
	}
	return nil
}

// fieldTypes maps the JSON names of a struct's fields (t a struct or a
// pointer to one) to their types.
func fieldTypes(t reflect.Type) map[string]reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	types := map[string]reflect.Type{}
	if t == nil || t.Kind() != reflect.Struct {
		return types
	}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
			continue
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			for n, ft := range fieldTypes(f.Type) {
				types[n] = ft
			}
			continue
		case name == "":
			name = f.Name
		}
		types[name] = f.Type
	}
	return types
}
