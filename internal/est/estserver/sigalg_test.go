package estserver_test

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"strings"
	"testing"

	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/est"
)

// r136 D4: a request signed with Ed448 gets 403 naming Ed448, not advice
// on RSASSA-PSS salts, which it was given.
func TestEd448SignatureIsNamed(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	der, err := est.DecodeBase64(newCSR(t, newKey(t), "ed448", csr.Template{}))
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		Info      asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		t.Fatal(err)
	}
	req.Algorithm = pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 3, 101, 113}} // id-Ed448
	if der, err = asn1.Marshal(req); err != nil {
		t.Fatal(err)
	}
	r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, est.EncodeBase64(der), nil)
	wantStatus(t, r, http.StatusForbidden, "signed with Ed448")
	if strings.Contains(string(r.body), "salt") {
		t.Errorf("%q gives an Ed448 client advice on PSS salts", r.body)
	}
}
