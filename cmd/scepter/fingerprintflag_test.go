package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// A malformed --ca-fingerprint (README's placeholder sha256:3f1c…, a
// short digest) is refused with the other flags, exit 2, naming the flag
// and the form it takes, before anything is sent. It was found only after
// GetCACert or /cacerts, exit 1, without naming the flag, and not at all
// when the server was unreachable.
func TestMalformedCAFingerprintRefusedBeforeContact(t *testing.T) {
	var requests atomic.Int64
	count := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusNotFound)
	})
	plain := httptest.NewServer(count)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(count)
	defer tlsSrv.Close()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	scep, est := plain.URL+"/scep", tlsSrv.URL
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
	}{
		{"enroll", nil, []string{"enroll", "--url", scep, "--challenge", "x", "--subject", "CN=x", "--key-out", key, "--out", cert, "--ca-fingerprint", "sha256:3f1c…"}},
		{"renew", nil, []string{"renew", "--url", scep, "--cert", cert, "--key", key, "--ca-fingerprint", "sha256:zz"}},
		{"getcrl", nil, []string{"getcrl", "--url", scep, "--cert", cert, "--ca-fingerprint", "sha256:zz"}},
		{"est cacerts", nil, []string{"est", "cacerts", "--url", est, "--ca-fingerprint", "3f1c"}},
		{"est enroll", nil, []string{"est", "enroll", "--url", est, "--user", "u", "--password-file", key, "--ca-fingerprint", "sha256:" + strings.Repeat("a", 63)}},
		{"est reenroll", nil, []string{"est", "reenroll", "--url", est, "--cert", cert, "--key", key, "--ca-fingerprint", "sha256:3f1c"}},
		{"est serverkeygen", nil, []string{"est", "serverkeygen", "--url", est, "--ca-fingerprint", "sha256:3f1c"}},
		{"bench", nil, []string{"bench", "--url", scep, "--challenge", "x", "--count", "1", "--ca-fingerprint", "sha256:3f1c"}},
		{"SCEPTER_CA_FINGERPRINT", map[string]string{"SCEPTER_CA_FINGERPRINT": "sha256:3f1c"}, []string{"est", "cacerts", "--url", est}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := requests.Load()
			e, _, _ := testEnv(tc.vars)
			err := run(context.Background(), e, tc.args)
			if exitCode(err) != 2 || err == nil {
				t.Fatalf("err = %v (exit %d), want exit 2", err, exitCode(err))
			}
			for _, want := range []string{"ca-fingerprint", "CA_FINGERPRINT", "64 hex digits"} {
				if want == "ca-fingerprint" && tc.vars != nil || want == "CA_FINGERPRINT" && tc.vars == nil {
					continue
				}
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the refusal does not say %q: %v", want, err)
				}
			}
			if n := requests.Load() - before; n != 0 {
				t.Errorf("%d requests reached the server before the refusal", n)
			}
		})
	}
}

// The forms people write are accepted: with or without the prefix, in
// any case, with colons; an empty value pins nothing.
func TestFingerprintValueAccepts(t *testing.T) {
	hexDigits := strings.Repeat("3f", 32)
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"sha256:" + hexDigits, true},
		{"SHA-256:" + strings.ToUpper(hexDigits), true},
		{hexDigits, true},
		{strings.Repeat("3F:", 31) + "3F", true},
		{"", true},
		{"sha256:3f1c…", false},
		{"sha1:" + hexDigits[:40], false},
		{hexDigits + "00", false},
	} {
		var got string
		err := fingerprintValue{&got}.Set(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Set(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
		if err == nil && got != tc.in {
			t.Errorf("Set(%q) kept %q", tc.in, got)
		}
	}
}
