package strictjson

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheckText: CheckText reads untrusted bodies. It never
// panics, and what it lets through decodes as sent: a valid UTF-8 body
// that it accepts and encoding/json reads holds no U+FFFD that the body
// did not spell (encoding/json's stand-in for a lone surrogate escape).
func FuzzCheckText(f *testing.F) {
	for _, seed := range []string{
		`{"ttl":"1h","subject":"CN=\ud800"}`,
		`{"subject":"CN=\ud83d\ude00"}`,
		`{"subject":"CN=\\ud800"}`,
		`{"\udc00":1}`,
		`[{"a":["\uD800\u0041"]}]`,
		`{"a":"\ud800\ud800\udc00"}`,
		strings.Repeat(`[`, 33) + strings.Repeat(`]`, 33),
		`{"a":1} {"b":"\ud800"}`,
		`not json`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := CheckText(body)
		if err != nil || !utf8.Valid(body) || !json.Valid(body) {
			return
		}
		if bytes.Contains(bytes.ToLower(body), []byte("ufffd")) || bytes.ContainsRune(body, utf8.RuneError) {
			return // the body spells U+FFFD itself
		}
		var v any
		if json.Unmarshal(body, &v) != nil {
			return
		}
		out, merr := json.Marshal(v)
		if merr != nil {
			t.Fatalf("re-encoding %q: %v", body, merr)
		}
		if bytes.ContainsRune(out, utf8.RuneError) || bytes.Contains(bytes.ToLower(out), []byte("ufffd")) {
			t.Fatalf("%q was let through but decodes with U+FFFD: %s", body, out)
		}
	})
}
