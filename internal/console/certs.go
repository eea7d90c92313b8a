package console

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
)

// inventoryPage is the certificate list with its filters.
type inventoryPage struct {
	Form      inventoryForm
	Certs     []pki.Certificate
	Next      string // the next page's URL, "" on the last page
	First     string // the first page's URL, when this is a later one
	Profiles  []string
	Issuers   []issuerChoice
	Protocols []string
	Statuses  []string
	Expiring  []int
	// ByExpiry says the list is in expiry order.
	ByExpiry bool
	// Filtered says a filter is set (an empty list means "none match").
	Filtered bool
	// Queried is false when the query could not run (the form's error).
	Queried bool
}

type issuerChoice struct{ ID, Label string }

// maxExpiringDays bounds "expiring within", as the API bounds its
// expiring_within (36500d): one bound, 100 years, beyond every
// certificate's end.
const maxExpiringDays = 36500

// inventoryForm is the filter form as sent (and shown again).
type inventoryForm struct {
	Q, Status, Profile, Protocol, Issuer, Expiring, IssuedFrom, IssuedTo, Renewed, Sort, Limit string
}

var (
	hexRE       = regexp.MustCompile(`^[0-9a-fA-F]{1,64}$`)
	protocols   = []string{string(pki.ProtocolSCEP), string(pki.ProtocolEST), string(pki.ProtocolCLI), string(pki.ProtocolInternal)}
	statuses    = []string{"valid", "revoked", "expired"}
	expiryDays  = []int{7, 30, 90, 365}
	sortExpiry  = maxExpiringDays * 24 * time.Hour // "expiring first" without a window: every unexpired one
	defaultPage = 50
)

func (f inventoryForm) values() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"q": f.Q, "status": f.Status, "profile": f.Profile, "protocol": f.Protocol, "issuer": f.Issuer,
		"expiring": f.Expiring, "issued_from": f.IssuedFrom, "issued_to": f.IssuedTo, "renewed": f.Renewed, "sort": f.Sort, "limit": f.Limit} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// query turns the form into an ops query, or says what is wrong with it.
func (f inventoryForm) query() (ops.CertQuery, error) {
	// The search text's length, the status and the renewed filter are
	// ops's to check, so the console refuses them with the API's reason.
	q := ops.CertQuery{Search: strings.TrimSpace(f.Q), Status: f.Status, Profile: f.Profile, Protocol: f.Protocol, IssuerID: f.Issuer,
		Renewed: f.Renewed}
	if f.Protocol != "" && !contains(protocols, f.Protocol) {
		return q, refusef("protocol %q: want one of %s", clip(f.Protocol), strings.Join(protocols, ", "))
	}
	if len(f.Profile) > 128 {
		return q, refusef("the profile name is longer than 128 characters")
	}
	if f.Issuer != "" && (len(f.Issuer) != 64 || !hexRE.MatchString(f.Issuer)) {
		return q, refusef("issuer %q: want a CA's ID (64 hex digits), as the CAs page lists them", clip(f.Issuer))
	}
	if f.Expiring != "" {
		n, ok := decimal(f.Expiring)
		if !ok || n < 1 || n > maxExpiringDays {
			return q, refusef("expiring within %q: want a number of days from 1 to %d", clip(f.Expiring), maxExpiringDays)
		}
		q.ExpiringWithin = time.Duration(n) * 24 * time.Hour
		if f.Status == "expired" {
			// ops would refuse it too, but in the API's parameter names
			// (expiring_within), which this form does not show (r137 D2).
			return q, refusef("Expiring within and the status Expired exclude each other: an expired certificate expires within no window; choose one of them")
		}
	}
	switch f.Sort {
	case "", "newest":
	case "expiring":
		if q.ExpiringWithin == 0 {
			if f.Status == "expired" {
				return q, refusef("expiring first lists unexpired certificates: it cannot show expired ones")
			}
			q.ExpiringWithin = sortExpiry
		}
	default:
		return q, refusef("sort %q: want newest or expiring", clip(f.Sort))
	}
	var err error
	if q.IssuedAfter, err = parseDay("issued from", f.IssuedFrom); err != nil {
		return q, err
	}
	if q.IssuedBefore, err = parseDay("issued until", f.IssuedTo); err != nil {
		return q, err
	}
	if !q.IssuedBefore.IsZero() && isDateOnly(f.IssuedTo) {
		// A date "until" includes that day.
		q.IssuedBefore = q.IssuedBefore.Add(24 * time.Hour)
	}
	if !q.IssuedAfter.IsZero() && !q.IssuedBefore.IsZero() && !q.IssuedAfter.Before(q.IssuedBefore) {
		// ops would refuse it too, but in the API's parameter names,
		// which this form does not show.
		return q, orderRefusal("Issued from", f.IssuedFrom, "Issued until", f.IssuedTo)
	}
	if q.Limit, err = parseLimit(f.Limit, defaultPage, ops.MaxPage); err != nil {
		return q, err
	}
	return q, nil
}

// unknownReason refuses pg.Reason by the reasons the page's form offers
// and their codes, which are not always all that the service knows.
func unknownReason(pg *certPage) error {
	var codes []int
	for _, n := range pg.Reasons {
		if code, err := admin.ParseReason(n); err == nil {
			codes = append(codes, code)
		}
	}
	if len(pg.Reasons) == 1 {
		return refusef("revocation reason %q: want %s, or its code (%s)", clip(pg.Reason), pg.Reasons[0], codeRanges(codes))
	}
	return refusef("revocation reason %q: want one of %s, or its code (%s)", clip(pg.Reason), strings.Join(pg.Reasons, ", "), codeRanges(codes))
}

// codeRanges writes ascending codes as runs: 0-5, 9.
func codeRanges(codes []int) string {
	var b strings.Builder
	for i := 0; i < len(codes); {
		j := i
		for j+1 < len(codes) && codes[j+1] == codes[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(codes[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(codes[j]))
		}
		i = j + 1
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// inventory lists certificates: search, filters, sort and cursor pages,
// all answered by ops.Certificates from the store's indexes (no counts, no
// offsets).
func (h *Handler) inventory(w http.ResponseWriter, r *http.Request, rq *req) error {
	qs := r.URL.Query()
	f := inventoryForm{Q: qs.Get("q"), Status: qs.Get("status"), Profile: qs.Get("profile"), Protocol: qs.Get("protocol"),
		Issuer: strings.ToLower(qs.Get("issuer")), Expiring: qs.Get("expiring"), IssuedFrom: qs.Get("issued_from"),
		IssuedTo: qs.Get("issued_to"), Renewed: qs.Get("renewed"), Sort: qs.Get("sort"), Limit: qs.Get("limit")}
	cursor := qs.Get("cursor")
	pg := inventoryPage{Form: f, Protocols: protocols, Statuses: statuses, Expiring: expiryDays}
	pg.Filtered = len(f.values()) > 0
	if err := h.choices(r, rq, &pg); err != nil {
		return err
	}
	q, err := f.query()
	if d, ok := decimal(f.Expiring); err == nil && ok {
		// The select names the window the list is filtered by, one not
		// among its choices too (?expiring=14 showed "any time", and
		// sending the form again dropped the filter), as the number it
		// is (007 selects 7).
		pg.Expiring, pg.Form.Expiring = withChoice(expiryDays, int(d)), strconv.FormatInt(d, 10)
	}
	if err == nil && len(cursor) > 512 {
		err = refusef("the cursor is longer than any this list gives")
	}
	if err == nil {
		q.Cursor = cursor
		pg.ByExpiry = q.ExpiringWithin > 0
		var next string
		pg.Certs, next, err = h.ops.Certificates(r.Context(), rq.p, q)
		if err == nil {
			pg.Queried = true
			if next != "" {
				v := f.values()
				v.Set("cursor", next)
				pg.Next = Prefix + "certificates?" + v.Encode()
			}
			if cursor != "" {
				pg.First = Prefix + "certificates?" + f.values().Encode()
			}
		}
	}
	v := h.newView(rq, "Certificates", "certificates", pg)
	if err != nil {
		if !formError(err) {
			return err
		}
		v.Error = message(err)
		h.render(w, statusFor(err), "certs", v)
		return nil
	}
	h.render(w, http.StatusOK, "certs", v)
	return nil
}

// choices fills the profile and issuer selects.
func (h *Handler) choices(r *http.Request, rq *req, pg *inventoryPage) error {
	profiles, _, err := h.ops.Profiles(r.Context(), rq.p)
	if err != nil {
		return err
	}
	for _, p := range profiles {
		pg.Profiles = append(pg.Profiles, p.Name)
	}
	if pg.Form.Profile != "" && !contains(pg.Profiles, pg.Form.Profile) {
		// A profile removed from the configuration still names old
		// certificates.
		pg.Profiles = append(pg.Profiles, pg.Form.Profile)
	}
	cas, _, err := h.ops.CAs(r.Context(), rq.p)
	if err != nil {
		return err
	}
	for _, c := range cas {
		pg.Issuers = append(pg.Issuers, issuerChoice{ID: c.ID, Label: c.Cert.Subject.CommonName + " (" + c.State + ", " + short(c.ID) + ")"})
	}
	return nil
}

// certPage is one certificate with all that surrounds it.
type certPage struct {
	D       *ops.CertificateDetail
	Info    certInfo
	Chain   []certInfo
	Status  string
	URL     string
	PEMURL  string
	Reasons []string
	// CanRevoke: valid, or on hold (a hold may become another reason);
	// CanUnhold: on hold.
	CanRevoke, CanUnhold bool
	// Reason is the reason chosen (shown again with an error).
	Reason string
	// Own says which of the server's own certificates this is ("" for
	// one of a device): the confirmation says what revoking it does.
	Own ownRole
}

// ownRole is one of the server's own certificates.
type ownRole string

const (
	ownSCEPRA    ownRole = "scep-ra"
	ownResponder ownRole = "ocsp-responder"
	ownHTTPS     ownRole = "https"
	ownOther     ownRole = "other"
)

// ownRoleOf says which of the server's own certificates rec is, or "".
// The inventory marks them with protocol internal, which is what the
// admin service goes by when it refuses to hold one; which one it is, the
// certificate's extended key usage says (the RA's has none).
func ownRoleOf(rec pki.Certificate, c *x509.Certificate) ownRole {
	if rec.Protocol != pki.ProtocolInternal {
		return ""
	}
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageOCSPSigning:
			return ownResponder
		case x509.ExtKeyUsageServerAuth:
			return ownHTTPS
		}
	}
	if len(c.ExtKeyUsage) == 0 && c.KeyUsage&x509.KeyUsageKeyEncipherment != 0 {
		// It decrypts the requests encrypted to it.
		return ownSCEPRA
	}
	return ownOther
}

func issuerParam(s string) (string, error) {
	if s != "" && !hexRE.MatchString(s) {
		return "", refusef("issuer %q: want (a prefix of) a CA's ID in hex", clip(s))
	}
	return strings.ToLower(s), nil
}

func (h *Handler) loadCert(r *http.Request, rq *req, issuer string) (*certPage, error) {
	// The serial is ops's to check (its length too), as for the API, and
	// read only as written in hex (0x10 is no serial 10), as the API does.
	serial := r.PathValue("serial")
	if err := admin.CheckSerialAsWritten(serial); err != nil {
		return nil, err
	}
	issuer, err := issuerParam(issuer)
	if err != nil {
		return nil, err
	}
	d, err := h.ops.Certificate(r.Context(), rq.p, serial, issuer)
	if err != nil {
		return nil, err
	}
	now := h.ops.Now()
	pg := &certPage{D: d, Info: decode(d.Cert), Status: certStatus(d.Record, now), URL: certURL(d.Record)}
	pg.PEMURL = Prefix + "certificates/" + url.PathEscape(d.Record.SerialHex) + "/pem?" + url.Values{"issuer": {d.Record.IssuerID}}.Encode()
	for _, c := range d.Chain {
		pg.Chain = append(pg.Chain, decode(c))
	}
	revoked := d.Record.Status == pki.StatusRevoked
	hold := revoked && d.Record.RevokeReason == admin.ReasonCertificateHold
	// A certificate revoked for another reason may still be raised to
	// keyCompromise, its key found compromised later: that alone.
	raisable := revoked && !hold && d.Record.RevokeReason != admin.ReasonKeyCompromise
	pg.CanRevoke = d.Record.Status == pki.StatusValid || hold || raisable
	pg.CanUnhold = hold
	pg.Own = ownRoleOf(d.Record, d.Cert)
	for _, n := range admin.ReasonNames() {
		if hold && n == "certificateHold" || raisable && n != "keyCompromise" {
			continue
		}
		if pg.Own != "" && n == "certificateHold" {
			// Refused for the server's own (admin.OwnHoldRefusal): not offered.
			continue
		}
		pg.Reasons = append(pg.Reasons, n)
	}
	return pg, nil
}

// certificate shows one certificate (?issuer= picks one when several CAs
// used the serial).
func (h *Handler) certificate(w http.ResponseWriter, r *http.Request, rq *req) error {
	pg, err := h.loadCert(r, rq, r.URL.Query().Get("issuer"))
	if err != nil {
		return err
	}
	v := h.newView(rq, "Certificate "+pg.Info.SubjectCN, "certificates", pg)
	v.Message = h.takeFlash(w, r, rq)
	h.render(w, http.StatusOK, "cert", v)
	return nil
}

// certificatePEM downloads the certificate (?chain=1: with its CA chain).
func (h *Handler) certificatePEM(w http.ResponseWriter, r *http.Request, rq *req) error {
	chain := r.URL.Query().Get("chain")
	if chain != "" && chain != "1" {
		// Not the leaf alone as if asked for: chain=yes meant the chain.
		return refusef("chain %q: want 1 for the certificate with its CA chain, or no chain for the certificate alone", clip(chain))
	}
	pg, err := h.loadCert(r, rq, r.URL.Query().Get("issuer"))
	if err != nil {
		return err
	}
	var b []byte
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pg.D.Record.DER})...)
	name := pg.D.Record.SerialHex + ".pem"
	if chain == "1" {
		for _, c := range pg.D.Chain {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		name = pg.D.Record.SerialHex + "-chain.pem"
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
	return nil
}

// revoke is the revocation form's target. Without confirm=yes it shows the
// confirmation step; with it, it revokes.
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := auth.Require(rq.p, pki.RoleOperator); err != nil {
		return err
	}
	pg, err := h.loadCert(r, rq, r.PostForm.Get("issuer"))
	if err != nil {
		return err
	}
	pg.Reason = r.PostForm.Get("reason")
	again := func(err error) error {
		if !formError(err) {
			return err
		}
		v := h.newView(rq, "Certificate "+pg.Info.SubjectCN, "certificates", pg)
		v.Error = message(err)
		h.render(w, statusFor(err), "cert", v)
		return nil
	}
	rec := pg.D.Record
	// As the API says it: which reason stays, and why.
	reasonStays := func() error {
		return again(pki.Errorf(pki.EConflict, "certificate %s is already revoked at %s, reason %s; the reason stays: only a certificateHold can be given another reason, or a reason raised to keyCompromise",
			pki.ShownSerial(rec.SerialHex), rec.RevokedAt.UTC().Format(time.RFC3339), admin.ReasonName(rec.RevokeReason)))
	}
	// The reason it has (a page loaded before another operator's
	// revocation, say): nothing changes, 200 as the API's changed: false.
	nothingChanged := func(name, message string) error {
		pg.Reason = name
		v := h.newView(rq, "Certificate "+pg.Info.SubjectCN, "certificates", pg)
		v.Message = message
		h.render(w, http.StatusOK, "cert", v)
		return nil
	}
	alreadyWith := func(name string) error {
		return nothingChanged(name, "The certificate is already revoked with that reason: nothing changed.")
	}
	if !pg.CanRevoke {
		if rec.Status == pki.StatusRevoked {
			if code, err := admin.ParseReason(pg.Reason); err == nil && pg.Reason != "" && code == rec.RevokeReason {
				return alreadyWith(admin.ReasonName(code))
			}
			return reasonStays()
		}
		return again(pki.Errorf(pki.EConflict, "certificate %s is %s already", pki.ShownSerial(rec.SerialHex), pg.Status))
	}
	if pg.Reason == "" {
		return again(refusef("choose a reason for the revocation"))
	}
	// Read as the API and the CLI read it (a name in any case, or its
	// code: 1 for keyCompromise), then known by its name.
	code, err := admin.ParseReason(pg.Reason)
	name, _ := pki.ReasonName(code)
	if err == nil && pg.CanUnhold && name == "certificateHold" {
		// Holding a held certificate again changes nothing, and the API
		// answers it so (200, changed: false); the reason is not unknown,
		// it is only left out of the form's list, so say what is the case.
		return nothingChanged(name, "The certificate is already on hold: nothing changed.")
	}
	if err != nil {
		if admin.IsAACompromise(pg.Reason) {
			// The service's reason: aACompromise is for attribute
			// certificates.
			return again(err)
		}
		// The service's list would offer what this form does not (a
		// hold, on the server's own certificates).
		return again(unknownReason(pg))
	}
	if pg.Own != "" && name == "certificateHold" && rec.Status != pki.StatusRevoked {
		// Not offered, but a form post can still send it: refused now,
		// as the API refuses it, not after a confirmation.
		return again(admin.OwnHoldRefusal(rec))
	}
	if !contains(pg.Reasons, name) && rec.Status == pki.StatusRevoked && code == rec.RevokeReason {
		return alreadyWith(name)
	}
	if !contains(pg.Reasons, name) && rec.Status == pki.StatusRevoked {
		// Another reason than keyCompromise for a certificate revoked
		// already: the reason stays, 409 as in the API.
		return reasonStays()
	}
	if !contains(pg.Reasons, name) {
		return again(unknownReason(pg))
	}
	pg.Reason = name
	if r.PostForm.Get("confirm") != "yes" {
		h.render(w, http.StatusOK, "revoke", h.newView(rq, "Revoke "+pg.Info.SubjectCN+"?", "certificates", pg))
		return nil
	}
	res, err := h.ops.Revoke(r.Context(), rq.p, pg.D.Record.SerialHex, pg.D.Record.IssuerID, pg.Reason)
	if err != nil {
		return again(err)
	}
	done := "revoked"
	if name == "certificateHold" {
		done = "held"
	}
	h.redirectWithFlash(w, r, rq, pg.URL, done, len(res.AlsoRevoked))
	return nil
}

// unhold lifts a certificateHold.
func (h *Handler) unhold(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := auth.Require(rq.p, pki.RoleOperator); err != nil {
		return err
	}
	pg, err := h.loadCert(r, rq, r.PostForm.Get("issuer"))
	if err != nil {
		return err
	}
	res, err := h.ops.Unhold(r.Context(), rq.p, pg.D.Record.SerialHex, pg.D.Record.IssuerID)
	if err == nil && !res.Changed {
		// Nothing was on hold (the API says changed: false); the page
		// must not say that a hold was lifted.
		err = pki.Errorf(pki.EConflict, "certificate %s is not on hold", pki.ShownSerial(pg.D.Record.SerialHex))
	}
	if err != nil {
		if !formError(err) {
			return err
		}
		v := h.newView(rq, "Certificate "+pg.Info.SubjectCN, "certificates", pg)
		v.Error = message(err)
		h.render(w, statusFor(err), "cert", v)
		return nil
	}
	done := "unheld"
	if !pg.D.Record.NotAfter.After(h.ops.Now()) {
		done = "unheld_expired" // not valid again: it expired on hold (r134)
	}
	h.redirectWithFlash(w, r, rq, pg.URL, done, 0)
	return nil
}
