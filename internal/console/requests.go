package console

import (
	"net/http"
	"net/url"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
)

// requestsPage lists requests held for approval.
type requestsPage struct {
	Status, Profile string
	Statuses        []string
	Profiles        []string
	Requests        []requestRow
	// RejectID and RejectReason are a rejection form shown again.
	RejectID, RejectReason string
	// Next is the next page's link ("" on the last), First the first
	// page's when this is a later one.
	Next, First string
	// Heading is the page's title and heading: the status it lists, so
	// rejected or expired requests are not headed as awaiting approval.
	Heading string
}

// requestsHeading names the requests a status lists.
func requestsHeading(status string) string {
	switch status {
	case "issued":
		return "Issued requests"
	case "rejected":
		return "Rejected requests"
	case "expired":
		return "Expired requests"
	case "all":
		return "All requests held for approval"
	}
	return "Pending approvals"
}

type requestRow struct {
	pki.EnrollmentRequest
	// CertURL is the issued certificate's page, once there is one.
	CertURL string
}

// requestsLimit is a page of requests; the rest are on the next pages.
const requestsLimit = 200

func (h *Handler) loadRequests(r *http.Request, rq *req, status, profile, cursor string) (*requestsPage, error) {
	if len(profile) > 128 {
		return nil, refusef("the profile name is longer than 128 characters")
	}
	if len(cursor) > 512 {
		return nil, refusef("the cursor is longer than any this list gives")
	}
	list, next, err := h.ops.Requests(r.Context(), rq.p, status, profile, requestsLimit, cursor)
	if err != nil {
		return nil, err
	}
	pg := &requestsPage{Status: status, Profile: profile, Statuses: []string{"pending", "issued", "rejected", "expired", "all"}}
	filter := url.Values{}
	for k, v := range map[string]string{"status": status, "profile": profile} {
		if v != "" {
			filter.Set(k, v)
		}
	}
	pg.Next, pg.First = pageLinks("requests", filter, cursor, next)
	if pg.Status == "" {
		pg.Status = "pending"
	}
	pg.Heading = requestsHeading(pg.Status)
	profiles, _, err := h.ops.Profiles(r.Context(), rq.p)
	if err != nil {
		return nil, err
	}
	for _, p := range profiles {
		pg.Profiles = append(pg.Profiles, p.Name)
	}
	for _, q := range list {
		row := requestRow{EnrollmentRequest: q}
		if q.CertSerialHex != "" {
			row.CertURL = Prefix + "certificates/" + url.PathEscape(q.CertSerialHex) + "?" + url.Values{"issuer": {q.CertIssuerID}}.Encode()
		}
		pg.Requests = append(pg.Requests, row)
	}
	return pg, nil
}

// requests lists held requests (?status=pending|issued|rejected|expired|all,
// ?profile=).
func (h *Handler) requests(w http.ResponseWriter, r *http.Request, rq *req) error {
	q := r.URL.Query()
	pg, err := h.loadRequests(r, rq, q.Get("status"), q.Get("profile"), q.Get("cursor"))
	if err != nil {
		return err
	}
	v := h.newView(rq, pg.Heading, "requests", pg)
	v.Message = h.takeFlash(w, r, rq)
	h.render(w, http.StatusOK, "requests", v)
	return nil
}

// requestAgain shows the pending list again with the reason an action
// failed (one of two people approving at once is told the other won).
func (h *Handler) requestAgain(w http.ResponseWriter, r *http.Request, rq *req, err error, rejectID, reason string) error {
	if !formError(err) {
		return err
	}
	pg, lerr := h.loadRequests(r, rq, "", "", "")
	if lerr != nil {
		return lerr
	}
	pg.RejectID, pg.RejectReason = rejectID, reason
	v := h.newView(rq, pg.Heading, "requests", pg)
	v.Error = message(err)
	h.render(w, statusFor(err), "requests", v)
	return nil
}

func requestID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 128 {
		// No ID this server gives: none it has, so 404, as the API.
		return "", pki.Errorf(pki.ENotFound, "no request %s", clip(id))
	}
	return id, nil
}

// approve issues a held request's certificate.
func (h *Handler) approve(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := auth.Require(rq.p, pki.RoleOperator); err != nil {
		return err
	}
	id, err := requestID(r)
	if err != nil {
		return err
	}
	if _, err := h.ops.Approve(r.Context(), rq.p, id); err != nil {
		return h.requestAgain(w, r, rq, err, "", "")
	}
	h.redirectWithFlash(w, r, rq, Prefix+"requests", "approved", 0)
	return nil
}

// reject refuses a held request with a reason.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := auth.Require(rq.p, pki.RoleOperator); err != nil {
		return err
	}
	id, err := requestID(r)
	if err != nil {
		return err
	}
	reason := r.PostForm.Get("reason")
	if err := h.ops.Reject(r.Context(), rq.p, id, reason); err != nil {
		return h.requestAgain(w, r, rq, err, id, reason)
	}
	h.redirectWithFlash(w, r, rq, Prefix+"requests", "rejected", 0)
	return nil
}

// pageLinks are the links to the next page of a console list (after next,
// "" when there is none) and, on a later page (cursor given), to its first.
func pageLinks(page string, filter url.Values, cursor, next string) (nextURL, firstURL string) {
	if next != "" {
		v := url.Values{}
		for k, vs := range filter {
			v[k] = vs
		}
		v.Set("cursor", next)
		nextURL = Prefix + page + "?" + v.Encode()
	}
	if cursor != "" {
		firstURL = Prefix + page
		if len(filter) > 0 {
			firstURL += "?" + filter.Encode()
		}
	}
	return nextURL, firstURL
}
