package console_test

import (
	"net/http"
	"testing"

	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/pki"
)

// A held request whose retention ran out with no decision is expired: not
// among the pending ones, listed under "expired" with no Approve or Reject
// (the device asking after it is told to enroll again), and a decision
// posted anyway is refused.
func TestExpiredRequestIsNotPending(t *testing.T) {
	e := newEnv(t, console.Options{})
	old := e.hold("too-late")
	e.pki.Clock.Advance(pki.DefaultProfile().RequestRetention)
	fresh := e.hold("in-time")
	a := e.as("operator")

	res := a.get("/ui/requests")
	expectStatus(t, "pending list", res, http.StatusOK)
	expectBody(t, "pending list", res, "CN=in-time", "/ui/requests/"+fresh+"/approve")
	expectNotBody(t, "pending list", res, "CN=too-late", old)

	res = a.get("/ui/requests?status=expired")
	expectStatus(t, "expired list", res, http.StatusOK)
	expectBody(t, "expired list", res, "CN=too-late", `<span class="badge badge-expired">expired</span>`,
		"no decision by", `<option value="expired" selected>`)
	expectNotBody(t, "expired list", res, "CN=in-time", "/ui/requests/"+old+"/approve", "/ui/requests/"+old+"/reject")

	res = a.get("/ui/requests?status=all")
	expectBody(t, "the whole list", res, "CN=too-late", "CN=in-time", "badge-expired", "badge-pending")
	expectNotBody(t, "the whole list", res, "/ui/requests/"+old+"/approve", "/ui/requests/"+old+"/reject")

	for _, action := range []string{"approve", "reject"} {
		res = a.post("/ui/requests/"+old+"/"+action, map[string][]string{"reason": {"too late"}})
		expectStatus(t, action+" an expired request", res, http.StatusConflict)
		expectBody(t, action+" an expired request", res, "expired at")
	}
}
