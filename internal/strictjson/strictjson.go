// Package strictjson refuses the JSON that encoding/json reads in a way its
// writer may not have meant: encoding/json matches object keys to struct
// fields regardless of case and lets the last of two equal keys win, so
// {"allow":false,"ALLOW":true} decodes as true. Where such a body decides
// something (an API call's role, a webhook's allow), the writer of the
// first key and the reader disagree.
package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// MaxDepth bounds the nesting CheckKeys and CheckText walk.
const MaxDepth = 32

// ErrTooDeep is their refusal of a body nested deeper than MaxDepth.
var ErrTooDeep = fmt.Errorf("the JSON nests deeper than %d levels", MaxDepth)

// CheckKeys refuses body when an object in it, at any depth, holds a key
// twice, or when a key of its top object is the JSON name of a field of v
// (a struct or a pointer to one; any other v: no names checked) in
// another case. Keys that name no field are left to the caller
// (json.Decoder.DisallowUnknownFields, or ignored). Call it on a body that
// has decoded into v.
func CheckKeys(body []byte, v any) error {
	names := fieldNames(reflect.TypeOf(v))
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func(depth int, top bool) error
	walk = func(depth int, top bool) error {
		if depth > MaxDepth {
			return ErrTooDeep
		}
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("malformed JSON: %w", err)
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return fmt.Errorf("malformed JSON: %w", err)
				}
				key, _ := kt.(string)
				if seen[key] {
					return fmt.Errorf("field %q appears twice", key)
				}
				seen[key] = true
				if top && !names[key] {
					for name := range names {
						if strings.EqualFold(name, key) {
							return fmt.Errorf("field %q is spelled %q (field names are case-sensitive)", name, key)
						}
					}
				}
				if err := walk(depth+1, false); err != nil {
					return err
				}
			}
		case json.Delim('['):
			for dec.More() {
				if err := walk(depth+1, false); err != nil {
					return err
				}
			}
		default:
			return nil
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	return walk(0, true)
}

// fieldNames are the JSON names of a struct's fields (t a struct or a
// pointer to one; nil otherwise).
func fieldNames(t reflect.Type) map[string]bool {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	names := map[string]bool{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
			continue
		case f.Anonymous && name == "":
			for n := range fieldNames(f.Type) {
				names[n] = true
			}
			continue
		case name == "":
			name = f.Name
		}
		names[name] = true
	}
	return names
}
