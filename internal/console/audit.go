package console

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

// auditPage is the audit trail, newest first, with filters and (when
// asked) the result of a verification of its hash chain.
type auditPage struct {
	Form   auditForm
	Events []auditRow
	Next   string
	First  string
	Types  []string
	Report *verifyReport
}

type auditForm struct{ Type, Serial, Since, Until, Limit string }

type auditRow struct {
	pki.AuditEvent
	CertURL string
}

// verifyReport is what ops.VerifyAudit found.
type verifyReport struct {
	OK      bool
	Checked int64
	LastID  int64
	// The first broken record, when not OK.
	ProblemID   int64
	ProblemTime time.Time
	ProblemType string
	What        string
}

// eventTypes are the audit event types, for the type filter's suggestions.
var eventTypes = ops.EventTypes

func (f auditForm) Values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"type": f.Type, "serial": f.Serial, "since": f.Since, "until": f.Until, "limit": f.Limit} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func (f auditForm) filter() (store.AuditFilter, error) {
	// The type (known, or in the trail) and the serial are ops's to
	// check, so the console refuses them with the API's reason. The serial
	// is first read only as written in hex, as the API reads it and the
	// certificate page does: 0x10, +10, :10 or 10 with a space was read
	// leniently as serial 10. White space pasted into the field is refused
	// too rather than trimmed, so a link to this page and the same API
	// call answer alike.
	af := store.AuditFilter{Type: f.Type, SerialHex: f.Serial}
	if f.Serial != "" {
		if err := admin.CheckSerialAsWritten(f.Serial); err != nil {
			return af, err
		}
	}
	var err error
	if af.Since, err = parseDay("Since", f.Since); err != nil {
		return af, err
	}
	if af.Until, err = parseDay("Until", f.Until); err != nil {
		return af, err
	}
	if !af.Until.IsZero() && isDateOnly(f.Until) {
		af.Until = af.Until.Add(24 * time.Hour)
	}
	if !af.Since.IsZero() && !af.Until.IsZero() && !af.Since.Before(af.Until) {
		return af, orderRefusal("Since", f.Since, "Until", f.Until)
	}
	if af.Limit, err = parseLimit(f.Limit, 100, ops.MaxPage); err != nil {
		return af, err
	}
	return af, nil
}

// audit lists events (?type=, ?serial=, ?since=, ?until=, ?before= for
// the next page).
func (h *Handler) audit(w http.ResponseWriter, r *http.Request, rq *req) error {
	return h.auditPage(w, r, rq, nil)
}

// auditVerify checks the whole chain (ops.VerifyAudit), then lists events
// as audit does. It is a page of its own because it reads the whole trail.
func (h *Handler) auditVerify(w http.ResponseWriter, r *http.Request, rq *req) error {
	rep, err := h.ops.VerifyAudit(r.Context(), rq.p)
	if err != nil {
		return err
	}
	vr := &verifyReport{OK: rep.OK(), Checked: rep.Checked, LastID: rep.LastID}
	if p := rep.Problem; p != nil {
		vr.ProblemID, vr.ProblemTime, vr.ProblemType, vr.What = p.ID, p.Time, p.Type, p.What
	}
	return h.auditPage(w, r, rq, vr)
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, rq *req, rep *verifyReport) error {
	qs := r.URL.Query()
	f := auditForm{Type: qs.Get("type"), Serial: qs.Get("serial"), Since: qs.Get("since"), Until: qs.Get("until"), Limit: qs.Get("limit")}
	pg := auditPage{Form: f, Types: eventTypes, Report: rep}
	af, err := f.filter()
	if err == nil && qs.Get("before") != "" {
		id, ok := decimal(qs.Get("before"))
		if !ok || id < 1 {
			err = refusef("before %q: want an event number", clip(qs.Get("before")))
		}
		af.BeforeID = id
		pg.First = Prefix + "audit?" + f.Values().Encode()
	}
	var events []pki.AuditEvent
	if err == nil {
		events, err = h.ops.Audit(r.Context(), rq.p, af)
	}
	if err != nil {
		if !formError(err) {
			return err
		}
		v := h.newView(rq, "Audit log", "audit", pg)
		v.Error = message(err)
		h.render(w, statusFor(err), "audit", v)
		return nil
	}
	for _, e := range events {
		row := auditRow{AuditEvent: e}
		if e.SerialHex != "" {
			q := url.Values{}
			if e.IssuerID != "" {
				q.Set("issuer", e.IssuerID)
			}
			row.CertURL = Prefix + "certificates/" + url.PathEscape(e.SerialHex)
			if len(q) > 0 {
				row.CertURL += "?" + q.Encode()
			}
		}
		pg.Events = append(pg.Events, row)
	}
	if len(events) == af.Limit && len(events) > 0 {
		v := f.Values()
		v.Set("before", strconv.FormatInt(events[len(events)-1].ID, 10))
		pg.Next = Prefix + "audit?" + v.Encode()
	}
	h.render(w, http.StatusOK, "audit", h.newView(rq, "Audit log", "audit", pg))
	return nil
}
