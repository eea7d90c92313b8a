package csr

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"github.com/scepter/scepter/internal/pkitest"
	"net/url"
	"strings"
	"testing"
)

func TestCreateAndReadChallenge(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		key       crypto.Signer
		challenge string
		dns       []string
	}{
		{"rsa with challenge and SAN", rsaKey, "s3cret-ÄÖ", []string{"a.example", "b.example"}},
		{"rsa without challenge", rsaKey, "", nil},
		{"ec with challenge", ecKey, "capture-secret", []string{"ec.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := Template{Subject: pkix.Name{CommonName: "device-1", Organization: []string{"Acme"}}, DNSNames: tt.dns, ChallengePassword: tt.challenge}
			der, err := Create(tmpl, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			req, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := req.CheckSignature(); err != nil {
				t.Fatalf("signature: %v", err)
			}
			got, err := ChallengePassword(req)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.challenge {
				t.Errorf("challenge = %q, want %q", got, tt.challenge)
			}
			if len(req.DNSNames) != len(tt.dns) {
				t.Errorf("DNS names = %v, want %v", req.DNSNames, tt.dns)
			}
			if req.Subject.CommonName != "device-1" {
				t.Errorf("subject = %v", req.Subject)
			}
		})
	}
}

func TestParseDN(t *testing.T) {
	der, err := ParseDN(`CN=device-1, O=Acme\, Inc.,C=DE`)
	if err != nil {
		t.Fatal(err)
	}
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(der, &rdns); err != nil {
		t.Fatal(err)
	}
	var name pkix.Name
	name.FillFromRDNSequence(&rdns)
	if got, want := name.String(), "CN=device-1,O=Acme\\, Inc.,C=DE"; got != want {
		t.Errorf("name = %q, want %q", got, want)
	}
	for _, bad := range []string{"", "CN", "XX=1", "CN=", "CN=a+CN=b", "O=x,cn=a+CN=b"} {
		if _, err := ParseDN(bad); err == nil {
			t.Errorf("ParseDN(%q) succeeded", bad)
		}
	}
}

// ParseDN reads RFC 4514's escapes (§3: a backslash before a special
// character or a space, or before two hex digits giving an octet of the
// UTF-8) and refuses any other backslash, which it dropped before: a
// challenge bound to "CN=c\qx" was bound to CN=cqx (r72 D7).
func TestParseDNEscapes(t *testing.T) {
	cn := func(t *testing.T, dn string) string {
		t.Helper()
		der, err := ParseDN(dn)
		if err != nil {
			t.Fatalf("ParseDN(%q): %v", dn, err)
		}
		var rdns pkix.RDNSequence
		if _, err := asn1.Unmarshal(der, &rdns); err != nil {
			t.Fatal(err)
		}
		var name pkix.Name
		name.FillFromRDNSequence(&rdns)
		return name.CommonName
	}
	for dn, want := range map[string]string{
		`CN=a\,b`:          "a,b",
		`CN=a\+b\;c\<d\>e`: "a+b;c<d>e",
		`CN=a\"b\\c\=d`:    `a"b\c=d`,
		`CN=\#1`:           "#1",
		`CN=\ lead`:        " lead",
		`CN=trail\ `:       "trail ",
		`CN=trail\ ,O=x`:   "trail ",
		`CN=trail\  `:      "trail ",
		`CN=caf\C3\A9`:     "café",
		`CN=a\2Cb`:         "a,b",
		`CN=  spaced  `:    "spaced",
	} {
		if got := cn(t, dn); got != want {
			t.Errorf("ParseDN(%q): CN %q, want %q", dn, got, want)
		}
	}
	// What Go writes, ParseDN reads back.
	name := pkix.Name{CommonName: ` a,b+c"d\e<f>g;h#i `}
	if got := cn(t, name.String()); got != name.CommonName {
		t.Errorf("ParseDN(%q): CN %q, want %q", name.String(), got, name.CommonName)
	}
	// Refused, with what was wrong as it was written (one backslash where
	// one was typed), naming the attribute.
	for bad, want := range map[string]string{
		`CN=c\qx`:      `the escape \q (U+0071)`,
		`CN=c\ud800`:   `the escape \u (U+0075)`,
		`CN=a\`:        `ends in a backslash`,
		`CN=a\\\`:      `ends in a backslash`,
		`CN=a\2`:       `the escape \2 (U+0032)`,
		`CN=a\2G`:      `the escape \2 (U+0032)`,
		`CN=a\C3`:      `do not make UTF-8`,
		`CN=a\x1b`:     `the escape \x (U+0078)`,
		"CN=a\\\u00a0": "the escape \\\u00a0 (U+00A0)",
		`CN=#0C0161`:   `write \# for a value that starts with a # sign`,
		`CN=a;O=b`:     `; must be escaped in a value (\;)`,
		`CN=a"b"`:      `" must be escaped in a value (\")`,
		`CN=<x>`:       `< must be escaped in a value (\<)`,
	} {
		_, err := ParseDN(bad)
		if err == nil {
			t.Errorf("ParseDN(%q) succeeded", bad)
			continue
		}
		if !strings.HasPrefix(err.Error(), "CN: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDN(%q): %v, want the attribute and %q", bad, err, want)
		}
	}
}

// FuzzChallengePassword feeds untrusted requests to every reader of what
// crypto/x509 leaves unparsed: the challengePassword, the SAN types and
// the URI SANs as the request spells them.
func FuzzChallengePassword(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := Create(Template{Subject: pkix.Name{CommonName: "x"}, ChallengePassword: "pw"}, key)
	f.Add(der)
	for _, uri := range []string{"spiffe://x/a b", "https://h.example/p?q#f", "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"} {
		san, _ := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(uri)}})
		der, _ := Create(Template{Subject: pkix.Name{CommonName: "x"}, ExtraExtensions: []pkix.Extension{{Id: oidSubjectAltName, Value: san}}}, key)
		f.Add(der)
	}
	// Microsoft's extension-request attribute, alone and beside
	// extensionRequest: MicrosoftExtensions reads it.
	f.Add(pkitest.SignedCSR(f, key, "ms", pkitest.MicrosoftExtensionRequestOfSANs(f, "a.example")))
	f.Add(pkitest.SignedCSR(f, key, "ms", pkitest.ExtensionRequestOfSANs(f, "a.example"), pkitest.MicrosoftExtensionRequestOfSANs(f, "b.example")))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := x509.ParseCertificateRequest(data)
		if err != nil {
			// Exercise the attribute walker on raw bytes too, and the
			// reader of keys crypto/x509 refused.
			rawAttributes(data)
			UnreadableECKeyRefusal(data, nil)
			UnreadableECKeyRefusal(data, []string{"P-256"})
			return
		}
		ChallengePassword(req)
		ExtensionRequestProblem(req)
		MicrosoftExtensions(req) // reads untrusted DER of its own, into req
		unissued, err := UnissuedSANs(req)
		if err != nil || len(unissued) > 0 {
			return
		}
		// Accepted: every URI is issued as the request has it, so writing
		// it again and reading it back changes nothing.
		for _, u := range req.URIs {
			if p := uriProblem(u.String()); p != "" {
				t.Errorf("accepted URI %q: %s", u, p)
			}
		}
	})
}

// FuzzURIProblem: a URI SAN found acceptable is one crypto/x509 writes
// back as it is (but for the scheme's case).
func FuzzURIProblem(f *testing.F) {
	for _, s := range []string{"spiffe://x/a b", "spiffe://x/a%20b", "urn:uuid:1", "HTTPS://h/p?q#f#g", "http://[::1]:8/%zz", "a:%", "//h/p"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if uriProblem(raw) != "" {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which url.Parse refuses: %v", raw, err)
		}
		if !strings.EqualFold(u.String(), raw) || u.String()[len(u.Scheme):] != raw[len(u.Scheme):] {
			t.Errorf("accepted %q, issued as %q", raw, u.String())
		}
	})
}

func TestWithoutChallengePassword(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	extra, _ := asn1.Marshal([]byte("key-id"))
	der, err := Create(Template{Subject: pkix.Name{CommonName: "dev"}, DNSNames: []string{"dev.example"}, ChallengePassword: "secret-value",
		Attributes: []Attribute{{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 54}, Values: [][]byte{extra}}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	stripped, err := WithoutChallengePassword(der)
	if err != nil {
		t.Fatal(err)
	}
	req, err := x509.ParseCertificateRequest(stripped)
	if err != nil {
		t.Fatal(err)
	}
	if pw, err := ChallengePassword(req); pw != "" || err != nil {
		t.Errorf("challengePassword %q, %v", pw, err)
	}
	if req.Subject.CommonName != "dev" || len(req.DNSNames) != 1 || !req.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Errorf("names or key lost: %+v", req)
	}
	if v, ok, err := AttributeValues(req, asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 54}); !ok || err != nil || len(v) != 1 {
		t.Errorf("other attributes lost: %v %v", ok, err)
	}
	// Without a challenge, the request comes back as it is.
	plain, _ := Create(Template{Subject: pkix.Name{CommonName: "dev"}}, key)
	if same, err := WithoutChallengePassword(plain); err != nil || string(same) != string(plain) {
		t.Errorf("a request without challenge changed: %v", err)
	}
}
