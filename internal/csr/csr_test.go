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
	for _, bad := range []string{"", "CN", "XX=1", "CN="} {
		if _, err := ParseDN(bad); err == nil {
			t.Errorf("ParseDN(%q) succeeded", bad)
		}
	}
}

// FuzzChallengePassword feeds untrusted requests to every reader of what
// crypto/x509 leaves unparsed: the challengePassword and the SAN types.
func FuzzChallengePassword(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := Create(Template{Subject: pkix.Name{CommonName: "x"}, ChallengePassword: "pw"}, key)
	f.Add(der)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := x509.ParseCertificateRequest(data)
		if err != nil {
			// Exercise the attribute walker on raw bytes too.
			rawAttributes(data)
			return
		}
		ChallengePassword(req)
		UnissuedSANs(req)
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
