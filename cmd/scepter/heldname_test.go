package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/client"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/scep"
)

// The reviewer's scenario (r63 D2): a request held for approval as CN=ap-2
// and approved is collected, as README says, by running the command again,
// here typed CN=Ap-2, which the server's held match calls the same name.
// The run takes the kept key up (not "--key-out already holds the key of
// another request ... pass --force"), and EST does not warn that the server
// issued other names.
func TestHeldKeyTakenUpByARetryWithNamesTheServerCallsTheSame(t *testing.T) {
	s := startServe(t, "[profiles.default]\napproval = true\n")
	d := t.TempDir()
	path := func(name string) string { return filepath.Join(d, name) }
	cases := []struct {
		name   string
		args   func(subject, dns string) []string
		keyOut string
	}{
		{"scep enroll", func(subject, dns string) []string {
			return []string{"enroll", "--url", s.scepURL, "--challenge", "test", "--subject", subject, "--dns", dns, "--key-type", "p256",
				"--out", path("cert.pem"), "--key-out", path("key.pem")}
		}, path("key.pem")},
		{"est enroll", func(subject, dns string) []string {
			return []string{"est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", subject, "--dns", dns,
				"--out", path("est.pem"), "--key-out", path("estkey.pem")}
		}, path("estkey.pem")},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			held := fmt.Sprintf("CN=ap-%d,O=Acme", i)
			retry := fmt.Sprintf("CN=Ap-%d,O=ACME", i)
			s.expectHeld(t, c.name, c.args(held, "ap.example"))
			ids := s.pending(t)
			s.approve(t, ids[0])
			heldKey := loadKey(t, c.keyOut).Public()

			out, err := runCLI(c.args(retry, "AP.example")...)
			if err != nil {
				t.Fatalf("%s as %s after the approval: %v\n%s", c.name, retry, err, out)
			}
			if !strings.Contains(out, "using the key in "+c.keyOut) {
				t.Errorf("%s: the kept key is not taken up:\n%s", c.name, out)
			}
			if strings.Contains(out, "other names") {
				t.Errorf("%s: warns of other names:\n%s", c.name, out)
			}
			if !pki.SamePublicKey(heldKey, loadKey(t, c.keyOut).Public()) {
				t.Errorf("%s: the certificate was collected with another key", c.name)
			}
			if ids := s.pending(t); len(ids) != 0 {
				t.Errorf("%s: still held: %v", c.name, ids)
			}
		})
	}
}

// A request's marker names it by its names as the server's held match
// compares them: names that rule calls the same are one request, names it
// tells apart (a serialNumber's case, a DNS name more) are two.
func TestEnrollmentRequestComparesNamesAsTheHeldMatch(t *testing.T) {
	tmpl := func(subject string, dns ...string) csr.Template {
		raw, err := csr.ParseDN(subject)
		if err != nil {
			t.Fatal(err)
		}
		return csr.Template{RawSubject: raw, DNSNames: dns}
	}
	held := enrollmentRequest("est enroll", "https://127.0.0.1:8443", tmpl("CN=ap-2,O=Acme,SERIALNUMBER=ab12", "a.example", "b.example"))
	for _, c := range []struct {
		name string
		req  heldRequest
		same bool
	}{
		{"the same names", enrollmentRequest("est enroll", "https://127.0.0.1:8443", tmpl("CN=ap-2,O=Acme,SERIALNUMBER=ab12", "a.example", "b.example")), true},
		{"CN and O in another case, SANs in another order and case", enrollmentRequest("est enroll", "https://127.0.0.1:8443",
			tmpl("CN=Ap-2,O=ACME,SERIALNUMBER=ab12", "B.example", "a.example", "a.example")), true},
		{"spaces around", enrollmentRequest("est enroll", "https://127.0.0.1:8443/", tmpl("CN= ap-2 ,O=Acme,SERIALNUMBER=ab12", "a.example", "b.example")), true},
		{"the serialNumber in another case", enrollmentRequest("est enroll", "https://127.0.0.1:8443", tmpl("CN=ap-2,O=Acme,SERIALNUMBER=AB12", "a.example", "b.example")), false},
		{"another CN", enrollmentRequest("est enroll", "https://127.0.0.1:8443", tmpl("CN=ap-3,O=Acme,SERIALNUMBER=ab12", "a.example", "b.example")), false},
		{"a DNS name fewer", enrollmentRequest("est enroll", "https://127.0.0.1:8443", tmpl("CN=ap-2,O=Acme,SERIALNUMBER=ab12", "a.example")), false},
		{"another URL", enrollmentRequest("est enroll", "https://127.0.0.1:8443/.well-known/est/other", tmpl("CN=ap-2,O=Acme,SERIALNUMBER=ab12", "a.example", "b.example")), false},
		{"another command", enrollmentRequest("est serverkeygen", "https://127.0.0.1:8443", tmpl("CN=ap-2,O=Acme,SERIALNUMBER=ab12", "a.example", "b.example")), false},
	} {
		if got := held.matches(c.req); got != c.same {
			t.Errorf("%s: matches %v, want %v", c.name, got, c.same)
		}
	}
}

// legacyEnrollmentRequest is the request hash of a marker written before
// the names form (before r63 D2): the subject's bytes and the SANs as given.
func legacyEnrollmentRequest(op, serverURL string, t csr.Template) string {
	var sans []string
	for _, n := range t.DNSNames {
		sans = append(sans, "dns:"+n)
	}
	for _, n := range t.EmailAddresses {
		sans = append(sans, "email:"+n)
	}
	for _, n := range t.IPAddresses {
		sans = append(sans, "ip:"+n.String())
	}
	for _, n := range t.URIs {
		sans = append(sans, "uri:"+n.String())
	}
	slices.Sort(sans)
	h := sha256.New()
	for _, f := range append([]string{op, strings.TrimRight(serverURL, "/"), string(t.RawSubject)}, sans...) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// A marker an older build wrote (a "request" line only, hashing the names
// as sent) still names its request for the very same names, so an upgrade
// does not strand a held key; and the marker this build writes keeps that
// line, so an older build run again still takes the key up.
func TestHeldMarkerOfAnOlderBuild(t *testing.T) {
	d := t.TempDir()
	keyOut := filepath.Join(d, "key.pem")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.WriteKeyFile(keyOut, key); err != nil {
		t.Fatal(err)
	}
	subject := func(s string) []byte {
		raw, err := csr.ParseDN(s)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	u, _ := url.Parse("spiffe://example.org/ap")
	asked := csr.Template{RawSubject: subject("CN=ap-2,O=Acme"), DNSNames: []string{"ap.example"}, EmailAddresses: []string{"ap@example.com"},
		IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}, URIs: []*url.URL{u}}
	const op, serverURL = "scep enroll", "http://127.0.0.1:8080/scep"
	legacy := legacyEnrollmentRequest(op, serverURL, asked)
	old := fmt.Sprintf("# scepter: the key in key.pem was made for a request an earlier run could not complete (held for approval, or its answer lost);\n"+
		"# the same command takes it up again. Remove both files to make a new key and a new request.\nkey sha256:%s\nrequest sha256:%s\n",
		spkiHash(key.Public()), legacy)
	if err := os.WriteFile(keyOut+heldMarkerSuffix, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	held, err := findHeldKey(keyOut, filepath.Join(d, "cert.pem"), nil, enrollmentRequest(op, serverURL, asked))
	if err != nil || held == nil || held.path != keyOut {
		t.Fatalf("an older build's marker for the same names: %v, %v; want the key in %s taken up", held, err, keyOut)
	}
	other := asked
	other.RawSubject = subject("CN=ap-3,O=Acme")
	if held, err := findHeldKey(keyOut, filepath.Join(d, "cert.pem"), nil, enrollmentRequest(op, serverURL, other)); err != nil || held != nil {
		t.Errorf("an older build's marker, other names: %v, %v; want no key taken up", held, err)
	}

	// This build's marker still says what an older build looks for.
	if err := writeHeldMarker(keyOut, key.Public(), enrollmentRequest(op, serverURL, asked), holdAnswered); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(keyOut + heldMarkerSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nrequest sha256:"+legacy+"\n") {
		t.Errorf("the marker does not name the request as older builds do (request sha256:%s):\n%s", legacy, data)
	}
}

// A renewal's kept key (--rekey) goes only when the request is refused:
// after a wrong challenge or password, or no answer, it stays, and the
// message says which (r63 D2).
func TestKeptKeyNoteByWhatFailed(t *testing.T) {
	for _, c := range []struct {
		name    string
		failure heldFailure
		removed bool
		said    string
	}{
		{"SCEP: rejected", scepKeptKeyFailure(&client.FailureError{FailInfo: scep.BadRequest, Text: "the request was rejected: not ours"}), true, "is removed"},
		{"SCEP: revoked", scepKeptKeyFailure(&client.FailureError{FailInfo: scep.BadCertID, Text: "the certificate to renew is revoked"}), true, "is removed"},
		{"SCEP: a wrong challenge", scepKeptKeyFailure(&client.FailureError{FailInfo: scep.BadRequest, Text: "challenge password is not valid"}), false,
			"the challenge was refused, not the key: the new key stays in"},
		{"SCEP: locked out", scepKeptKeyFailure(&client.FailureError{FailInfo: scep.BadRequest, Text: "locked out after too many failed attempts"}), false, "the new key is kept in"},
		{"SCEP: an HTTP error", scepKeptKeyFailure(&client.HTTPError{Status: http.StatusNotFound}), false, "the new key is kept in"},
		{"SCEP: no answer", scepKeptKeyFailure(errors.New("connection refused")), false, "the new key is kept in"},
		{"EST: rejected", estKeptKeyFailure(&client.HTTPError{Status: http.StatusForbidden, Reason: "the request was rejected: not ours"}, true), true, "is removed"},
		{"EST: another refusal", estKeptKeyFailure(&client.HTTPError{Status: http.StatusBadRequest, Reason: "no"}, true), true, "is removed"},
		{"EST: a wrong password", estKeptKeyFailure(&client.HTTPError{Status: http.StatusUnauthorized, Reason: "user name or password is not valid"}, true), false,
			"the credentials were refused, not the key: the new key stays in"},
		// The server's own texts: internal/enroll steps.go lockedOut and renewal.go.
		{"SCEP: the server's lockout", scepKeptKeyFailure(&client.FailureError{FailInfo: scep.BadRequest, Text: "too many failed attempts from this address; try again after 2030-01-01T00:00:00Z"}), false, "the new key is kept in"},
		{"SCEP: on hold", scepKeptKeyFailure(&client.FailureError{FailInfo: scep.BadCertID, Text: "the certificate to renew is on hold (certificateHold); ask the operator to lift the hold, then renew"}), false, "the new key is kept in"},
		{"EST: revoked, with a password", estKeptKeyFailure(&client.HTTPError{Status: http.StatusUnauthorized, Reason: "the certificate to renew is revoked"}, true), true,
			"the certificate being renewed was refused, not a password"},
		{"EST: not in the inventory", estKeptKeyFailure(&client.HTTPError{Status: http.StatusUnauthorized, Reason: "the client certificate is not in this CA's inventory"}, true), true,
			"the certificate being renewed was refused"},
		{"EST: not this CA's", estKeptKeyFailure(&client.HTTPError{Status: http.StatusUnauthorized, Reason: "the client certificate was not issued by this CA"}, true), true,
			"the certificate being renewed was refused"},
		{"EST: 401 to the certificate alone", estKeptKeyFailure(&client.HTTPError{Status: http.StatusUnauthorized, Reason: "no"}, false), true,
			"the certificate being renewed was refused"},
		{"EST: on hold", estKeptKeyFailure(&client.HTTPError{Status: http.StatusUnauthorized, Reason: "the certificate to renew is on hold (certificateHold); ask the operator to lift the hold, then renew"}, false), false,
			"the new key is kept in"},
		{"EST: the server's lockout", estKeptKeyFailure(&client.HTTPError{Status: http.StatusTooManyRequests, Reason: "too many failed attempts from this address; try again after 2030-01-01T00:00:00Z"}, true), false,
			"the new key is kept in"},
		{"EST: 429", estKeptKeyFailure(&client.HTTPError{Status: http.StatusTooManyRequests}, true), false, "the new key is kept in"},
		{"EST: 503", estKeptKeyFailure(&client.HTTPError{Status: http.StatusServiceUnavailable}, true), false, "the new key is kept in"},
		{"EST: no answer", estKeptKeyFailure(errors.New("connection reset"), true), false, "the new key is kept in"},
	} {
		d := t.TempDir()
		keyPath := filepath.Join(d, "key.pem.pending")
		for _, p := range []string{keyPath, keyPath + heldMarkerSuffix} {
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		failed := errors.New("renewal failed")
		got := keptKeyNote(failed, &heldKey{path: keyPath}, c.failure)
		if !errors.Is(got, failed) || !strings.Contains(got.Error(), c.said) {
			t.Errorf("%s: %v; want it to say %q", c.name, got, c.said)
		}
		_, keyErr := os.Stat(keyPath)
		_, markerErr := os.Stat(keyPath + heldMarkerSuffix)
		if removed := os.IsNotExist(keyErr) && os.IsNotExist(markerErr); removed != c.removed {
			t.Errorf("%s: the key and its marker removed: %v (%v, %v), want %v", c.name, removed, keyErr, markerErr, c.removed)
		}
	}
}
