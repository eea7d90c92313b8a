package client

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

var trustNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// issue makes a certificate for cn signed by parent (nil: self-signed).
func issue(t *testing.T, cn string, parent *testCert, isCA bool, notAfter time.Time) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: trustNow.Add(-time.Hour), NotAfter: notAfter,
		IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	signer, signerCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: key}
}

// localhostTLSCert makes a TLS server certificate for 127.0.0.1, signed by
// ca and valid from an hour before trustNow to notAfter: its DER and key.
func localhostTLSCert(t *testing.T, ca *testCert, notAfter time.Time) ([]byte, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: trustNow.Add(-time.Hour), NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func subjects(certs []*x509.Certificate) string {
	var names []string
	for _, c := range certs {
		names = append(names, c.Subject.CommonName)
	}
	return strings.Join(names, ",")
}

// A server that sends its own RA and CA beside the pinned one gets none of
// them believed; without a pin, what chains to a self-signed CA it sent.
func TestTrustedCACerts(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	ra := issue(t, "ra", root, false, later)
	evilCA := issue(t, "evil-ca", nil, true, later)
	evilRA := issue(t, "evil-ra", evilCA, false, later)
	orphanRA := issue(t, "orphan-ra", issue(t, "unsent-ca", nil, true, later), false, later)
	expiredRA := issue(t, "expired-ra", root, false, trustNow.Add(-time.Minute))
	all := []*x509.Certificate{evilRA.cert, root.cert, ra.cert, evilCA.cert, orphanRA.cert, expiredRA.cert}

	got, err := TrustedCACerts(all, Fingerprint(root.cert), trustNow)
	if err != nil || subjects(got) != "root,ra" {
		t.Errorf("pinned: %q, %v; want root,ra", subjects(got), err)
	}
	got, err = TrustedCACerts(all, "", trustNow)
	if err != nil || subjects(got) != "evil-ra,root,ra,evil-ca" {
		t.Errorf("unpinned: %q, %v; want what chains to a self-signed CA sent along", subjects(got), err)
	}
	if _, err := TrustedCACerts([]*x509.Certificate{evilRA.cert, evilCA.cert}, Fingerprint(root.cert), trustNow); err == nil {
		t.Error("the pinned CA is not among them, and no error")
	}
	if _, err := TrustedCACerts([]*x509.Certificate{expiredRA.cert}, "", trustNow); err != nil {
		t.Errorf("no self-signed certificate: %v, want all kept", err)
	}
}

func TestVerifyIssued(t *testing.T) {
	later := trustNow.Add(24 * time.Hour)
	root := issue(t, "root", nil, true, later)
	sub := issue(t, "issuing", root, true, later)
	evilCA := issue(t, "evil-ca", nil, true, later)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafFrom := func(parent *testCert, isCA bool, notAfter time.Time, key crypto.Signer) *x509.Certificate {
		t.Helper()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "dev1"}, NotBefore: trustNow.Add(-time.Hour),
			NotAfter: notAfter, IsCA: isCA, BasicConstraintsValid: isCA}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, key.Public(), parent.key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fromEvil := leafFrom(evilCA, false, later, leafKey)
	cas := []*x509.Certificate{sub.cert, root.cert, evilCA.cert}
	pin := Fingerprint(root.cert)
	chain, err := VerifyIssued(leafFrom(sub, false, later, leafKey), leafKey.Public(), cas, pin, trustNow, nil)
	if err != nil || subjects(chain) != "issuing,root" {
		t.Errorf("a good certificate: chain %q, %v", subjects(chain), err)
	}
	for _, c := range []struct {
		name string
		cert *x509.Certificate
		pin  string
		want string
	}{
		{"from a CA the server sent beside the pinned one", fromEvil, pin, "does not chain to the CA with fingerprint"},
		{"from a CA the server sent, unpinned: trusted on first use", fromEvil, "", ""},
		{"for another key", leafFrom(sub, false, later, otherKey), pin, "not for our key"},
		{"expired", leafFrom(sub, false, trustNow.Add(-time.Minute), leafKey), pin, "the returned certificate has expired"},
		{"expired, from a CA the server sent beside the pinned one", leafFrom(evilCA, false, trustNow.Add(-time.Minute), leafKey), pin, "does not chain to the CA with fingerprint"},
		{"a CA certificate", leafFrom(sub, true, later, leafKey), pin, "is a CA certificate"},
		{"none", nil, pin, "no certificate"},
	} {
		_, err := VerifyIssued(c.cert, leafKey.Public(), cas, c.pin, trustNow, nil)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

// A server that sets NotBefore to its own now issues, to a device whose
// clock is a little behind, a certificate valid from a few seconds ahead:
// accepted, with a warning about the clock; but not from far ahead, and
// not an expired one.
func TestVerifyIssuedClockBehind(t *testing.T) {
	root := issue(t, "root", nil, true, trustNow.Add(48*time.Hour))
	sub := issue(t, "issuing", root, true, trustNow.Add(48*time.Hour))
	other := issue(t, "other", nil, true, trustNow.Add(48*time.Hour))
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := func(notBefore, notAfter time.Time) *x509.Certificate {
		t.Helper()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "dev1"}, NotBefore: notBefore, NotAfter: notAfter}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, sub.cert, leafKey.Public(), sub.key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	day := 24 * time.Hour
	for _, c := range []struct {
		name      string
		notBefore time.Duration // from the local clock
		notAfter  time.Duration
		cas       []*x509.Certificate
		pin       string
		wantErr   string // "": accepted
		wantWarn  bool
	}{
		{"valid since an hour", -time.Hour, day, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert), "", false},
		{"valid from now", 0, day, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert), "", false},
		{"valid from 3 s ahead", 3 * time.Second, day, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert), "", true},
		{"valid from 3 s ahead, no anchor", 3 * time.Second, day, []*x509.Certificate{sub.cert}, "", "", true},
		{"valid from 5 min ahead", 5 * time.Minute, day, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert), "", true},
		{"valid from 5 min 1 s ahead", 5*time.Minute + time.Second, day, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert), "the returned certificate is not valid yet", false},
		{"valid from 5 min 1 s ahead, no anchor", 5*time.Minute + time.Second, day, []*x509.Certificate{sub.cert}, "", "the returned certificate is not valid yet", false},
		{"valid from a day ahead", day, 2 * day, []*x509.Certificate{sub.cert, root.cert}, "", "the returned certificate is not valid yet", false},
		// r101 D4: the local clock is not said to be the wrong one.
		{"valid from 10 min ahead: both clocks are named", 10 * time.Minute, day, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert),
			"the returned certificate is not valid yet: it is valid from 2030-01-02T03:14:05Z to 2030-01-03T03:04:05Z, and this machine's clock says 2030-01-02T03:04:05Z, 10m0s earlier, more than the 5m0s a clock may drift; " +
				"this machine's clock is behind or the server's is ahead", false},
		{"valid from 10 min ahead, no anchor: both clocks are named", 10 * time.Minute, day, []*x509.Certificate{sub.cert}, "", "this machine's clock is behind or the server's is ahead", false},
		{"valid from a day ahead, from another CA", day, 2 * day, []*x509.Certificate{other.cert, root.cert}, Fingerprint(root.cert), "does not chain to the CA with fingerprint", false},
		{"expired a second ago", -day, -time.Second, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert),
			"the returned certificate has expired: it is valid from 2030-01-01T03:04:05Z to 2030-01-02T03:04:04Z, and this machine's clock says 2030-01-02T03:04:05Z", false},
		{"expired, no anchor", -day, -time.Second, []*x509.Certificate{sub.cert}, "", "the returned certificate has expired", false},
		{"expired before its CA's start", -day, -2 * time.Hour, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert), "the returned certificate has expired", false},
		{"valid from after its CA's end", 3 * day, 4 * day, []*x509.Certificate{sub.cert, root.cert}, Fingerprint(root.cert), "the returned certificate is not valid yet", false},
		{"expired, from another CA", -day, -time.Second, []*x509.Certificate{other.cert, root.cert}, Fingerprint(root.cert), "does not chain to the CA with fingerprint", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var warnings []string
			warnf := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
			_, err := VerifyIssued(leaf(trustNow.Add(c.notBefore), trustNow.Add(c.notAfter)), leafKey.Public(), c.cas, c.pin, trustNow, warnf)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("refused: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("err = %v, want one saying %q", err, c.wantErr)
			case c.wantErr != "" && !strings.Contains(c.wantErr, "does not chain") && strings.Contains(err.Error(), "does not chain"):
				t.Errorf("err = %v: it chains, and is refused for its dates", err)
			}
			if got := len(warnings) == 1 && strings.Contains(warnings[0], "local clock is behind"); got != c.wantWarn || len(warnings) > 1 {
				t.Errorf("warnings %q, want a warning about the clock: %v", warnings, c.wantWarn)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"denied":                                 "denied",
		"été ok":                                 "été ok",
		"denied\x1b[2J\x1b[31mFAKE\nissued CN=x": `denied\x1b[2J\x1b[31mFAKE\nissued CN=x`,
		"bad \xff byte":                          `bad \xff byte`,
		"bidi \u202e override":                   `bidi \u202e override`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
