package strictjson

import (
	"strings"
	"testing"
)

func TestCheckKeys(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Role  string `json:"role"`
		Inner struct {
			A int `json:"a"`
		} `json:"inner"`
		Plain  int
		Hidden int `json:"-"`
	}
	for _, c := range []struct {
		json, want string // want: "" for no error, else part of the error
	}{
		{`{"name":"x","role":"auditor"}`, ""},
		{`{"name":"x","extra":1}`, ""}, // unknown keys are the caller's
		{`{"Plain":1}`, ""},
		{`{"name":"x","role":"auditor","role":"admin"}`, "appears twice"},
		{`{"name":"x","role":"auditor","ROLE":"admin"}`, `"role" is spelled "ROLE"`},
		{`{"NAME":"x"}`, `"name" is spelled "NAME"`},
		{`{"plain":1}`, `"Plain" is spelled "plain"`},
		{`{"inner":{"a":1,"a":2}}`, "appears twice"},
		{`{"list":[{"k":1},{"k":1,"k":2}]}`, "appears twice"},
		{`{"inner":{"A":1}}`, ""}, // only the top object's names are checked
		{strings.Repeat(`[`, MaxDepth+2) + strings.Repeat(`]`, MaxDepth+2), "nests deeper"},
	} {
		err := CheckKeys([]byte(c.json), &body{})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.json, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error saying %q", c.json, err, c.want)
		}
	}
}

// FuzzCheckKeys: no bytes make it panic.
func FuzzCheckKeys(f *testing.F) {
	f.Add([]byte(`{"allow":false,"ALLOW":true}`))
	f.Add([]byte(`{"a":[{"b":1},{"b":2}],"c":{"d":null}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var v struct {
			Allow *bool `json:"allow"`
		}
		_ = CheckKeys(body, &v)
	})
}
