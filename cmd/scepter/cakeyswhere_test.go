package main

import "testing"

// The banner says where the CA's keys are when a token was given: a node
// copied from one with key files keeps signing with the files, and must
// not claim the token holds them.
func TestCAKeysWhere(t *testing.T) {
	for _, c := range []struct {
		inToken bool
		want    string
	}{
		{true, `in PKCS#11 token "t1"`},
		{false, `files in /data/ca (not in PKCS#11 token "t1", which was given)`},
	} {
		if got := caKeysWhere(`PKCS#11 token "t1"`, c.inToken, "/data/ca"); got != c.want {
			t.Errorf("caKeysWhere(inToken=%v) = %q, want %q", c.inToken, got, c.want)
		}
	}
}
