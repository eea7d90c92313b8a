package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/pki"
)

// challengesPage lists one-time challenges (never a secret) and, for
// operators, the form that mints one. Secret is set once, in the answer to
// the POST that made it.
type challengesPage struct {
	Challenges []challengeRow
	Profiles   []string
	Default    string
	Form       challengeForm
	Secret     string
	Created    *challengeRow
	// MaxTTL is the longest lifetime allowed.
	MaxTTL string
	// Next is the next page's link ("" on the last), First the first
	// page's when this is a later one.
	Next, First string
}

type challengeForm struct{ TTL, Profile, Subject, DNS, Email string }

type challengeRow struct {
	pki.Challenge
	State   string
	Subject string
}

// challengesLimit is a page of challenges; the rest are on the next pages.
const challengesLimit = 200

func (h *Handler) loadChallenges(r *http.Request, rq *req, cursor string) (*challengesPage, error) {
	if len(cursor) > 512 {
		return nil, refusef("the cursor is longer than any this list gives")
	}
	list, next, err := h.ops.Challenges(r.Context(), rq.p, challengesLimit, cursor)
	if err != nil {
		return nil, err
	}
	profiles, def, err := h.ops.Profiles(r.Context(), rq.p)
	if err != nil {
		return nil, err
	}
	pg := &challengesPage{Default: def, Form: challengeForm{TTL: "60m", Profile: def}, MaxTTL: fmtDuration(admin.MaxChallengeTTL)}
	for _, p := range profiles {
		pg.Profiles = append(pg.Profiles, p.Name)
	}
	now := h.ops.Now()
	for _, c := range list {
		pg.Challenges = append(pg.Challenges, challengeRow{Challenge: c, State: challengeState(c, now), Subject: dnString(c.BoundSubject)})
	}
	pg.Next, pg.First = pageLinks("challenges", nil, cursor, next)
	return pg, nil
}

func challengeState(c pki.Challenge, now time.Time) string {
	switch {
	case !c.ConsumedAt.IsZero():
		return "used"
	case !c.LockedAt.IsZero():
		return "locked"
	case !now.Before(c.ExpiresAt):
		return "expired"
	}
	return "unused"
}

// challenges lists the challenges.
func (h *Handler) challenges(w http.ResponseWriter, r *http.Request, rq *req) error {
	pg, err := h.loadChallenges(r, rq, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	v := h.newView(rq, "Challenges", "challenges", pg)
	v.Message = h.takeFlash(w, r, rq)
	h.render(w, http.StatusOK, "challenges", v)
	return nil
}

// newChallenge mints a one-time challenge and shows its secret, once.
func (h *Handler) newChallenge(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := auth.Require(rq.p, pki.RoleOperator); err != nil {
		return err
	}
	pg, err := h.loadChallenges(r, rq, "")
	if err != nil {
		return err
	}
	f := challengeForm{TTL: r.PostForm.Get("ttl"), Profile: r.PostForm.Get("profile"), Subject: subjectField(r.PostForm.Get("subject")),
		DNS: r.PostForm.Get("dns"), Email: r.PostForm.Get("email")}
	pg.Form = f
	again := func(err error) error {
		if !formError(err) {
			return err
		}
		v := h.newView(rq, "Challenges", "challenges", pg)
		v.Error = message(err)
		h.render(w, statusFor(err), "challenges", v)
		return nil
	}
	ttl, err := parseTTL(f.TTL)
	if err != nil {
		return again(err)
	}
	if admin.CheckChallengeTTL(ttl) != nil {
		// Checked here, not left to ops, so that "0d" is told the value
		// as "36501d" is, not only the bounds.
		return again(ttlRefusal(f.TTL))
	}
	if f.Profile != "" && !contains(pg.Profiles, f.Profile) {
		// A refusal, not a form the console cannot read: 422, as the API.
		return again(pki.Errorf(pki.EBadRequest, "profile %q: want one of %s", clip(f.Profile), strings.Join(pg.Profiles, ", ")))
	}
	if len(f.Subject) > 1024 || len(f.DNS) > 8192 || len(f.Email) > 8192 {
		return again(refusef("the subject or the names are too long"))
	}
	spec := admin.ChallengeSpec{TTL: ttl, Profile: f.Profile, Subject: f.Subject, DNSNames: fields(f.DNS), Emails: fields(f.Email)}
	secret, ch, err := h.ops.NewChallenge(r.Context(), rq.p, spec)
	if err != nil {
		return again(err)
	}
	// Shown again (not redirected to): the secret is in this answer only.
	fresh, err := h.loadChallenges(r, rq, "")
	if err != nil {
		return err
	}
	fresh.Secret = secret
	fresh.Created = &challengeRow{Challenge: ch, State: "unused", Subject: dnString(ch.BoundSubject)}
	v := h.newView(rq, "Challenges", "challenges", fresh)
	v.Message = "Challenge created. Copy its secret now: it is shown this once."
	h.render(w, http.StatusOK, "challenges", v)
	return nil
}

// deleteChallenge removes a challenge.
func (h *Handler) deleteChallenge(w http.ResponseWriter, r *http.Request, rq *req) error {
	if err := auth.Require(rq.p, pki.RoleOperator); err != nil {
		return err
	}
	id := r.PathValue("id")
	if id == "" || len(id) > 128 {
		// No ID this server gives: none it has, so 404, as the API.
		return pki.Errorf(pki.ENotFound, "no challenge %s", clip(id))
	}
	if err := h.ops.DeleteChallenge(r.Context(), rq.p, id); err != nil {
		if !formError(err) {
			return err
		}
		pg, lerr := h.loadChallenges(r, rq, "")
		if lerr != nil {
			return lerr
		}
		v := h.newView(rq, "Challenges", "challenges", pg)
		v.Error = message(err)
		h.render(w, statusFor(err), "challenges", v)
		return nil
	}
	h.redirectWithFlash(w, r, rq, Prefix+"challenges", "deleted", 0)
	return nil
}

// subjectField is the form's subject as it was typed, or "" for none: the
// name's parser trims the white space around it but for a space escaped
// at its end ("CN=x\ "), which trimming here would have cut to a
// dangling backslash.
func subjectField(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return s
}
