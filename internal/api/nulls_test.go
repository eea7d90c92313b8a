package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A null is no value: sent for any field of any request body (none of
// which openapi.json marks nullable), or inside one, it is 400 naming the
// field and changes nothing. encoding/json would leave the field as if it
// were absent: {"reason":null} revoked for "unspecified", {"ttl":null}
// made a token that never expires.
func TestNullIsRefused(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "null-victim")
	serial := c.SerialNumber.Text(16)
	held := e.heldRequest(t, "null-held")
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody *struct {
				Content map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Nullable bool `json:"nullable"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(e.do(t, "", "GET", "/api/v1/openapi.json", nil).body, &doc); err != nil {
		t.Fatal(err)
	}
	concrete := strings.NewReplacer("{serial}", serial, "{id}", held).Replace
	tried := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.RequestBody == nil {
				continue
			}
			name := strings.TrimPrefix(op.RequestBody.Content["application/json"].Schema.Ref, "#/components/schemas/")
			for field, prop := range doc.Components.Schemas[name].Properties {
				if prop.Nullable {
					continue // none is, today; a nullable one takes null
				}
				tried++
				before := auditCount(t, e)
				r := e.do(t, pki.RoleAdmin, strings.ToUpper(method), concrete(path), `{"`+field+`":null}`)
				if r.status != http.StatusBadRequest || !strings.Contains(errorOf(t, r), `field "`+field+`"`) || !strings.Contains(errorOf(t, r), "null") {
					t.Errorf("%s %s {%q:null}: %d, want 400 naming the field\n%s", method, path, field, r.status, r.body)
				}
				if after := auditCount(t, e); after != before {
					t.Errorf("%s %s {%q:null}: %d audit events written", method, path, field, after-before)
				}
			}
		}
	}
	if tried < 10 {
		t.Errorf("only %d fields tried: the description's request bodies were not read", tried)
	}
	for _, tc := range []struct{ name, path, body string }{
		{"the brief's revocation", "/api/v1/certificates/" + serial + "/revoke", `{"reason":null}`},
		{"a token without expiry", "/api/v1/tokens", `{"name":"n","role":"admin","ttl":null}`},
		{"a challenge of the default lifetime", "/api/v1/challenges", `{"profile":"approval","ttl":null}`},
		{"a token name", "/api/v1/tokens", `{"name":null,"role":"auditor"}`},
		{"a null among names", "/api/v1/challenges", `{"dns":["a.example",null]}`},
	} {
		r := e.do(t, pki.RoleAdmin, "POST", tc.path, tc.body)
		if r.status != http.StatusBadRequest || !strings.Contains(errorOf(t, r), "null") {
			t.Errorf("%s: %d, want 400 saying null\n%s", tc.name, r.status, r.body)
		}
	}
	if got, _ := e.Store.Certificate(t.Context(), e.Issuer().ID, serial); got.Status != pki.StatusValid {
		t.Errorf("a null reason revoked the certificate: %s", got.Status)
	}
	if r := e.do(t, pki.RoleAdmin, "GET", "/api/v1/tokens", nil); strings.Count(string(r.body), `"name": "n"`) != 0 {
		t.Errorf("a null ttl made a token:\n%s", r.body)
	}
	// A null that is text is a value.
	if r := e.do(t, pki.RoleOperator, "POST", "/api/v1/challenges", `{"subject":"CN=null"}`); r.status != http.StatusCreated {
		t.Errorf(`subject "CN=null": %d\n%s`, r.status, r.body)
	}
}
