package console_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/pki"
)

// The requests page is titled and headed by the status it lists: rejected,
// issued or expired requests are not headed "Pending approvals", which
// they can no longer be.
func TestRequestsPageHeadedByStatus(t *testing.T) {
	e := newEnv(t, console.Options{})
	late := e.hold("too-late")
	e.pki.Clock.Advance(pki.DefaultProfile().RequestRetention)
	approved, rejected := e.hold("approved"), e.hold("rejected")
	e.hold("waiting")
	b := e.as("operator")
	expectStatus(t, "approve", b.post("/ui/requests/"+approved+"/approve", nil), http.StatusSeeOther)
	expectStatus(t, "reject", b.post("/ui/requests/"+rejected+"/reject", url.Values{"reason": {"no"}}), http.StatusSeeOther)

	for _, tc := range []struct {
		query, heading, row string
	}{
		{"", "Pending approvals", "CN=waiting"},
		{"?status=pending", "Pending approvals", "CN=waiting"},
		{"?status=issued", "Issued requests", "CN=approved"},
		{"?status=rejected", "Rejected requests", "CN=rejected"},
		{"?status=expired", "Expired requests", "CN=too-late"},
		{"?status=all", "All requests held for approval", "CN=too-late"},
	} {
		page := "/ui/requests" + tc.query
		res := b.get(page)
		expectStatus(t, page, res, http.StatusOK)
		expectBody(t, page, res, "<title>"+tc.heading+" · scepter</title>", "<h1>"+tc.heading+"</h1>", tc.row)
		if tc.heading != "Pending approvals" {
			expectNotBody(t, page, res, "Pending approvals")
		}
	}
	// A decision refused shows the pending list again, headed as such.
	res := b.post("/ui/requests/"+late+"/approve", nil)
	expectStatus(t, "approve an expired request", res, http.StatusConflict)
	expectBody(t, "approve an expired request", res, "<title>Pending approvals · scepter</title>", "<h1>Pending approvals</h1>")
}
