package api_test

import (
	"context"
	"testing"

	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/pki"
)

// A revocation for keyCompromise answers also_revoked: the other
// certificates of the key it revoked with the one named (here the
// certificate a re-enrollment with the same key replaced); any other
// revocation answers an empty list.
func TestRevokeAnswersAlsoRevoked(t *testing.T) {
	e := newEnv(t)
	req := e.Request(t, "same-key")
	first, err := e.Service.Enroll(context.Background(), req.Request)
	if err != nil {
		t.Fatal(err)
	}
	req.Request.TransactionID = "same-key-again"
	second, err := e.Service.Enroll(context.Background(), req.Request)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := e.Issue(t, "other-key")

	var res api.RevocationResult
	r := e.do(t, pki.RoleOperator, "POST", "/api/v1/certificates/"+other.SerialNumber.Text(16)+"/revoke",
		map[string]string{"reason": "superseded"})
	r.json(t, &res)
	if r.status != 200 || res.AlsoRevoked == nil || len(res.AlsoRevoked) != 0 {
		t.Errorf("superseded: %d %s; want also_revoked: []", r.status, r.body)
	}

	r = e.do(t, pki.RoleOperator, "POST", "/api/v1/certificates/"+second.Certificate.SerialNumber.Text(16)+"/revoke",
		map[string]string{"reason": "keyCompromise"})
	res = api.RevocationResult{}
	r.json(t, &res)
	want := api.CertRef{IssuerID: e.Issuer().ID, Serial: first.Certificate.SerialNumber.Text(16)}
	if r.status != 200 || len(res.AlsoRevoked) != 1 || res.AlsoRevoked[0] != want {
		t.Fatalf("keyCompromise: %d %s; want also_revoked [%+v]", r.status, r.body, want)
	}
}
