package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/httpjson"
)

// schemas names the JSON shapes the routes refer to.
var schemas = map[string]any{
	"Principal":         map[string]string{},
	"Certificate":       Certificate{},
	"CertificatePage":   CertificatePage{},
	"CertificateDetail": CertificateDetail{},
	"RevokeRequest":     RevokeRequest{},
	"UnholdRequest":     UnholdRequest{},
	"RevocationResult":  RevocationResult{},
	"Request":           Request{},
	"RequestList":       RequestPage{},
	"RejectRequest":     RejectRequest{},
	"Challenge":         Challenge{},
	"ChallengeList":     ChallengePage{},
	"ChallengeRequest":  ChallengeRequest{},
	"NewChallenge":      NewChallenge{},
	"AuditEvent":        AuditEvent{},
	"AuditList": struct {
		Items []AuditEvent `json:"items"`
	}{},
	"AuditVerification": AuditVerification{},
	"CA":                CA{},
	"CAList": struct {
		Root  CA   `json:"root"`
		Items []CA `json:"items"`
	}{},
	"Profile": Profile{},
	"ProfileList": struct {
		Items []Profile `json:"items"`
	}{},
	"Dashboard": Dashboard{},
	"ESTUser":   ESTUser{},
	"ESTUserList": struct {
		Items []ESTUser `json:"items"`
	}{},
	"ESTUserRequest": ESTUserRequest{},
	"Token":          Token{},
	"TokenList": struct {
		Items []Token `json:"items"`
	}{},
	"TokenRequest": TokenRequest{},
	"NewToken":     NewToken{},
	"User":         User{},
	"UserList": struct {
		Items []User `json:"items"`
	}{},
	"UserRequest": UserRequest{},
	"Error":       httpjson.ErrorBody{},
}

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// OpenAPI builds the OpenAPI 3 description of the routes.
func (h *Handler) OpenAPI() map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range h.routes {
		op := map[string]any{
			"summary":     rt.summary,
			"operationId": operationID(rt),
			"description": "Needs a token with role " + string(rt.role) + " or above.",
			"security":    []any{map[string]any{"bearer": []string{}}},
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, p := range rt.params {
			params = append(params, map[string]any{"name": p.name, "in": "query", "required": false, "description": p.desc,
				"schema": map[string]any{"type": p.typ}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.body != "" {
			op["requestBody"] = map[string]any{"required": !rt.bodyOptional, "content": map[string]any{
				"application/json": map[string]any{"schema": ref(rt.body)}}}
		}
		status := rt.status
		if status == 0 {
			status = http.StatusOK
		}
		success := map[string]any{"description": http.StatusText(status)}
		switch {
		case rt.contentType != "":
			success["content"] = map[string]any{rt.contentType: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
		case rt.reply != "":
			success["content"] = map[string]any{"application/json": map[string]any{"schema": ref(rt.reply)}}
		}
		responses := map[string]any{itoa(status): success}
		for _, code := range []int{400, 401, 403, 404, 409, 413, 422} {
			responses[itoa(code)] = errorResponse(http.StatusText(code), nil)
		}
		responses["429"] = errorResponse("Too Many Requests: too many from this address; detail is {\"retry_after_seconds\": N}, N as in Retry-After",
			map[string]any{"Retry-After": header("seconds to wait before trying again")})
		// OpenAPI has no answers per path: the 405 of another method of
		// this path is listed with each of its operations.
		responses["405"] = errorResponse("Method Not Allowed: a method this path does not take; Allow names those it does",
			map[string]any{"Allow": header("the methods this path takes, such as GET, HEAD, POST (HEAD wherever GET is)")})
		// Any call can find the store unavailable (out of reach, locked,
		// read-only, its disk full; the error says which) or the server
		// busy.
		responses["503"] = errorResponse("Service Unavailable: the store cannot be read or written now (the error says why), or the server is busy; detail is null, the wait is in Retry-After",
			map[string]any{"Retry-After": header("seconds to wait before trying again")})
		// Never for what a request holds (that is a 4xx); listed so that a
		// client written from this description handles it as a failure to
		// retry later rather than as an unknown answer.
		responses["500"] = errorResponse("Internal Server Error: a fault of the server itself, never of the request (the server's log says what); the change asked for may or may not have been made",
			nil)
		op["responses"] = responses
		if paths[Prefix+rt.path] == nil {
			paths[Prefix+rt.path] = map[string]any{}
		}
		paths[Prefix+rt.path][strings.ToLower(rt.method)] = op
	}
	comps := map[string]any{}
	for name, v := range schemas {
		comps[name] = schemaOf(reflect.TypeOf(v))
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{"title": "scepter admin API", "version": "1",
			"description": "Certificates, revocation, approvals, challenges, the audit trail, CAs, EST users, tokens and users. " +
				"Every change is an audit event naming the token. Errors are {\"error\": \"…\", \"detail\": …}."},
		"servers":    []any{map[string]any{"url": "/"}},
		"paths":      paths,
		"components": map[string]any{"schemas": comps, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
}

func operationID(rt route) string {
	words := strings.FieldsFunc(rt.path, func(r rune) bool { return r == '/' || r == '{' || r == '}' || r == '-' })
	id := strings.ToLower(rt.method)
	for _, w := range words {
		id += strings.ToUpper(w[:1]) + w[1:]
	}
	return id
}

// errorResponse describes an error answer, with the headers it carries
// (nil for none).
func errorResponse(description string, headers map[string]any) map[string]any {
	r := map[string]any{"description": description,
		"content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	if headers != nil {
		r["headers"] = headers
	}
	return r
}

func header(description string) map[string]any {
	return map[string]any{"description": description, "required": true, "schema": map[string]any{"type": "string"}}
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

var timeType = reflect.TypeOf(time.Time{})

// schemaOf describes a Go type as JSON encodes it.
func schemaOf(t reflect.Type) map[string]any {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	var s map[string]any
	switch {
	case t == timeType:
		s = map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.String:
		s = map[string]any{"type": "string"}
	case t.Kind() == reflect.Bool:
		s = map[string]any{"type": "boolean"}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		s = map[string]any{"type": "integer"}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		s = map[string]any{"type": "number"}
	case t.Kind() == reflect.Slice:
		s = map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case t.Kind() == reflect.Map:
		s = map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case t.Kind() == reflect.Struct:
		props := map[string]any{}
		required := addFields(t, props)
		s = map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
	case t.Kind() == reflect.Interface:
		s = map[string]any{}
	default:
		s = map[string]any{"type": "string"}
	}
	if nullable {
		s["nullable"] = true
	}
	return s
}

// addFields describes t's fields into props and returns the names of those
// a request must carry. A field's `doc` tag is its description. Its `openapi` tag says what the handler
// enforces of it: "required" (refused when absent or empty), or
// "default=V" (absent or empty reads as V).
func addFields(t reflect.Type, props map[string]any) (required []string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			required = append(required, addFields(f.Type, props)...)
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := schemaOf(f.Type)
		if d := f.Tag.Get("doc"); d != "" {
			s["description"] = d
		}
		for _, opt := range strings.Split(f.Tag.Get("openapi"), ",") {
			switch k, v, _ := strings.Cut(opt, "="); k {
			case "required":
				required = append(required, name)
			case "default":
				s["default"] = v
			}
		}
		props[name] = s
	}
	return required
}

func (h *Handler) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	b, err := json.MarshalIndent(h.OpenAPI(), "", "  ")
	if err != nil {
		httpjson.WriteError(w, http.StatusInternalServerError, "internal error", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(b)
}
