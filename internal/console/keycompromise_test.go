package console_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/pki"
)

// A revocation for keyCompromise that took the key's other certificates
// along says how many on the page it leads to.
func TestRevokeKeyCompromiseSaysHowManyOthers(t *testing.T) {
	e := newEnv(t, console.Options{})
	req := e.pki.Request(t, "same-key")
	first, err := e.pki.Service.Enroll(context.Background(), req.Request)
	if err != nil {
		t.Fatal(err)
	}
	req.Request.TransactionID = "same-key-again"
	second, err := e.pki.Service.Enroll(context.Background(), req.Request)
	if err != nil {
		t.Fatal(err)
	}
	c := second.Certificate
	b := e.as("operator")
	res := b.post(certPath(c)+"/revoke", url.Values{"issuer": {e.record(c).IssuerID}, "reason": {"keyCompromise"}, "confirm": {"yes"}})
	expectStatus(t, "revoke, confirmed", res, http.StatusSeeOther)
	loc := res.Header.Get("Location")
	if loc != certPath(c)+"?issuer="+e.record(c).IssuerID {
		t.Errorf("after revoking: Location %q", loc)
	}
	expectBody(t, "the certificate after revoking", b.get(loc), "and with it 1 other certificate of the same key")
	if r := e.record(first.Certificate); r.Status != pki.StatusRevoked || r.RevokeReason != 1 {
		t.Errorf("the first certificate of the key: %+v, want revoked for keyCompromise", r)
	}
}
