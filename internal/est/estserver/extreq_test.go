package estserver_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/est"
	"github.com/scepter/scepter/internal/pkitest"
)

// r126 D3: an extensionRequest attribute with two values (SAN a.example in
// the first, c.example in the second) is refused 400 naming the
// attribute, as two challengePassword values are; it was issued with
// a.example alone, c.example dropped unsaid. One value is issued as asked.
func TestTwoValuedExtensionRequestIsRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	key := newKey(t)
	one := pkitest.SignedCSR(t, key, "one", pkitest.ExtensionRequestOfSANs(t, "a.example"))
	cert := f.issued(f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, est.EncodeBase64(one), nil))
	if !slices.Equal(cert.DNSNames, []string{"a.example"}) {
		t.Errorf("one value: issued for %q, want a.example", cert.DNSNames)
	}
	two := pkitest.SignedCSR(t, newKey(t), "two", pkitest.ExtensionRequestOfSANs(t, "a.example", "c.example"))
	r := f.post(f.httpClient(nil, 0), "simpleenroll", "alice", userPassword, est.EncodeBase64(two), nil)
	wantStatus(t, r, http.StatusBadRequest, "this server can read: its extensionRequest attribute holds 2 values, and PKCS #9 (RFC 2985) allows exactly one")
}
