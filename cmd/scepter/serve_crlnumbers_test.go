package main

import (
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/crl"
)

// The reviewer's full disk, in small: a running serve whose
// DATA/crl-numbers cannot be written (a file in its place, which stops
// root too) gets a revocation. It does not go on serving its older CRL,
// which lacks it: the CRL URL answers 503 with Retry-After, /readyz fails
// naming "CRL numbers", and the log says why. Once the directory can be
// written again it serves the CRL with the revocation and is ready again,
// without a restart.
func TestServeHoldsBackCRLWhileNumbersCannotBeRecorded(t *testing.T) {
	// Mostly waits on real timers and fsyncs: beside the other such tests,
	// after the package's serial ones.
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := serveInProcess(t, nil, "--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data)
	if s.ended {
		t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
	}
	var scepURL, crlURL string
	for _, line := range strings.Split(s.out.String(), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			switch strings.TrimSpace(k) {
			case "SCEP URL":
				scepURL = strings.TrimSpace(v)
			case "CRL":
				crlURL = strings.TrimSpace(v)
			}
		}
	}
	if scepURL == "" || crlURL == "" {
		t.Fatalf("no SCEP or CRL URL in serve's start-up lines:\n%s", s.out.String())
	}
	readyURL := strings.TrimSuffix(scepURL, "/scep") + "/readyz"
	get := func(url string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	// await polls url until ok (the publisher runs every second, /readyz
	// reuses an outcome for 5 s).
	await := func(what, url string, ok func(*http.Response, []byte) bool) {
		t.Helper()
		var resp *http.Response
		var body []byte
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if resp, body = get(url); ok(resp, body) {
				return
			}
		}
		t.Fatalf("%s: the last answer of %s was %d %.200q", what, url, resp.StatusCode, body)
	}
	ready := func(resp *http.Response, body []byte) bool {
		return resp.StatusCode == http.StatusOK && strings.Contains(string(body), "CRL numbers: ok")
	}
	await("ready at start, with the check", readyURL, ready)

	pem := filepath.Join(dir, "a.pem")
	if out, err := runCLI("enroll", "--url", scepURL, "--challenge", "test", "--subject", "CN=a", "--key-type", "p256",
		"--out", pem, "--key-out", filepath.Join(dir, "a.key")); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	serial := readCertSerial(t, pem)

	numbers := filepath.Join(data, crl.NumbersDir)
	if err := os.RemoveAll(numbers); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(numbers, []byte("in the way\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("certs", "revoke", "--data-dir", data, "--reason", "keyCompromise", serial); err != nil {
		t.Fatalf("certs revoke: %v\n%s", err, out)
	}
	await("the CRL held back", crlURL, func(resp *http.Response, _ []byte) bool {
		return resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
	})
	await("not ready", readyURL, func(resp *http.Response, body []byte) bool {
		return resp.StatusCode == http.StatusServiceUnavailable && strings.HasPrefix(string(body), "not ready: CRL numbers\n")
	})
	if logs := s.errb.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "CRL numbers cannot be recorded in "+numbers) {
		t.Errorf("the log does not say at ERROR why the node is not ready:\n%s", logs)
	}

	if err := os.Remove(numbers); err != nil {
		t.Fatal(err)
	}
	await("the CRL with the revocation", crlURL, func(resp *http.Response, body []byte) bool {
		if resp.StatusCode != http.StatusOK {
			return false
		}
		list, err := x509.ParseRevocationList(body)
		if err != nil {
			t.Fatal(err)
		}
		return len(list.RevokedCertificateEntries) == 1 && list.RevokedCertificateEntries[0].SerialNumber.Text(16) == serial
	})
	await("ready again", readyURL, ready)
}
