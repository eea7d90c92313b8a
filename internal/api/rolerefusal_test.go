package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// TestRoleRefusalAudited: a change an API token's role does not allow is
// refused with 403, recorded as one action.refused event naming the token,
// the action and the role it lacked, and changes nothing else; a read
// refused so is not audited; the trail verifies after.
func TestRoleRefusalAudited(t *testing.T) {
	e := newEnv(t)
	c, _ := e.Issue(t, "kept")
	serial := c.SerialNumber.Text(16)
	path := "/api/v1/certificates/" + serial + "/revoke"

	before := auditCount(t, e)
	r := e.do(t, pki.RoleAuditor, "POST", path, map[string]string{"reason": "keyCompromise"})
	if r.status != http.StatusForbidden {
		t.Fatalf("auditor revoke: %d %s", r.status, r.body)
	}
	if n := auditCount(t, e) - before; n != 1 {
		t.Fatalf("auditor revoke wrote %d audit events, want 1", n)
	}
	checkRoleRefusal(t, e, "api:t-auditor", "POST "+path, pki.RoleAuditor, pki.RoleOperator)

	if got, err := e.Store.Certificate(context.Background(), e.Issuer().ID, serial); err != nil || got.Status != pki.StatusValid {
		t.Errorf("after the refused revoke: %+v %v, want valid", got, err)
	}

	// A read refused by role: logged, not audited.
	before = auditCount(t, e)
	if r := e.do(t, pki.RoleOperator, "GET", "/api/v1/tokens", nil); r.status != http.StatusForbidden {
		t.Fatalf("operator GET /tokens: %d %s", r.status, r.body)
	}
	if n := auditCount(t, e) - before; n != 0 {
		t.Errorf("a read refused by role wrote %d audit events, want 0", n)
	}

	var verify api.AuditVerification
	e.do(t, pki.RoleAuditor, "GET", "/api/v1/audit/verify", nil).json(t, &verify)
	if !verify.OK || verify.Checked == 0 {
		t.Errorf("audit verify after the refusals: %+v", verify)
	}
	evs, err := e.Store.ListAudit(context.Background(), store.AuditFilter{Type: pki.EventActionRefused})
	if err != nil || len(evs) != 1 {
		t.Errorf("action.refused events: %d %v, want 1", len(evs), err)
	}
}
