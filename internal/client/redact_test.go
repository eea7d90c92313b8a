package client

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://ca.example/scep", "http://ca.example/scep"},
		{"http://user:s3cret@ca.example:8080/scep", "http://user:xxxxx@ca.example:8080/scep"},
		{"https://user@ca.example/est", "https://user@ca.example/est"},
		{"http://u:s3cret@ca.example/p@th", "http://u:xxxxx@ca.example/p@th"},
		// Does not parse (a bad escape in the password): cut by hand.
		{"http://u:s3%zzcret@ca.example/scep", "http://xxxxx@ca.example/scep"},
		{"http://u:s3%zz@cret@ca.example/scep", "http://xxxxx@ca.example/scep"},
		// A raw "#", "?" or "/" in the password moves the "@" out of the
		// authority, where net/url finds no user info (r79): still masked.
		{"https://fleet:Secr3t#1@127.0.0.1:31291/", "https://xxxxx@127.0.0.1:31291/"},
		{"https://fleet:pa/ss@127.0.0.1:31291/", "https://xxxxx@127.0.0.1:31291/"},
		{"http://u:Secr3t?1@127.0.0.1:31290/scep", "http://xxxxx@127.0.0.1:31290/scep"},
		{"https://u:123/x@ca.example/est", "https://xxxxx@ca.example/est"},
		{"https://u:123?x@ca.example/est", "https://xxxxx@ca.example/est"},
		{"http://fleet:Pa55/word@127.0.0.1:31290/scep", "http://xxxxx@127.0.0.1:31290/scep"},
		// An empty query or fragment is shown as given (r100 D1: a refusal
		// of "…/iot#" quoted "…/iot").
		{"https://ca.example/iot#", "https://ca.example/iot#"},
		{"https://ca.example/iot?", "https://ca.example/iot?"},
		{"https://u:s3cret@ca.example/iot#", "https://u:xxxxx@ca.example/iot#"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
