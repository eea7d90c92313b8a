package api_test

import (
	"strings"
	"testing"
)

// The description of the certificates' q says that a search need not
// escape what RFC 4514 escapes: the index holds names unescaped, so
// "Doe, John" and "Doe\, John" both find CN=Doe\, John.
func TestOpenAPISaysSearchEscapesAreOptional(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct{ Name, Description string } `json:"parameters"`
		} `json:"paths"`
	}
	e.do(t, "", "GET", "/api/v1/openapi.json", nil).json(t, &doc)
	var desc string
	for _, p := range doc.Paths["/api/v1/certificates"]["get"].Parameters {
		if p.Name == "q" {
			desc = p.Description
		}
	}
	for _, want := range []string{"RFC 4514 escapes are optional", "`Doe, John` and `Doe\\, John` both find CN=Doe\\, John"} {
		if !strings.Contains(desc, want) {
			t.Errorf("q is described as %q, which does not say %q", desc, want)
		}
	}
}
