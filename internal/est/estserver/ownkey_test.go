package estserver_test

import (
	"crypto"
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/csr"
)

// A request for a key of the server's own (the issuing CA's, the RA's) is
// refused 403 naming whose key it is, as other key policy refusals (r60
// D1); a key of the client's own is issued.
func TestOwnKeysAreRefused(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	c := f.httpClient(nil, 0)
	for _, k := range []struct {
		key  crypto.Signer
		want string
	}{{f.auth.Issuer.Signer, "key of the issuing CA"}, {f.auth.RA.Key, "SCEP RA's key"}} {
		wantStatus(t, f.post(c, "simpleenroll", "alice", userPassword, newCSR(t, k.key, "own", csr.Template{}), nil), http.StatusForbidden, k.want)
	}
	f.issued(f.post(c, "simpleenroll", "alice", userPassword, newCSR(t, newKey(t), "own", csr.Template{}), nil))
}
