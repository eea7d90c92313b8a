package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// casPage shows the root, the issuing CAs of the rollover (current, next
// with its switch time, previous) and the profiles.
type casPage struct {
	Root     certInfo
	CAs      []caRow
	Profiles []profileRow
	Default  string
}

type caRow struct {
	ID, State string
	SwitchAt  time.Time
	Info      certInfo
	// Certs links the inventory of what this CA issued.
	Certs string
}

type profileRow struct {
	Name, Validity, Keys, ChallengeMode, Renewal, Issuer string
	KeyUsage, ExtKeyUsage                                []string
	Approval, Default, RevokeSuperseded                  bool
	Certs                                                string
}

func (h *Handler) cas(w http.ResponseWriter, r *http.Request, rq *req) error {
	cas, root, err := h.ops.CAs(r.Context(), rq.p)
	if err != nil {
		return err
	}
	profiles, def, err := h.ops.Profiles(r.Context(), rq.p)
	if err != nil {
		return err
	}
	pg := casPage{Default: def}
	if root != nil {
		pg.Root = decode(root)
	}
	for _, c := range cas {
		pg.CAs = append(pg.CAs, caRow{ID: c.ID, State: c.State, SwitchAt: c.SwitchAt, Info: decode(c.Cert),
			Certs: inventoryLink(url.Values{"issuer": {c.ID}})})
	}
	for _, p := range profiles {
		row := profileRow{Name: p.Name, Validity: fmtDuration(p.Validity), ChallengeMode: p.ChallengeMode, Approval: p.RequireApproval,
			Default: p.Name == def, RevokeSuperseded: p.RevokeSuperseded, KeyUsage: keyUsages(p.KeyUsage),
			ExtKeyUsage: extKeyUsages(p.ExtKeyUsage, nil), Issuer: p.Issuer, Certs: inventoryLink(url.Values{"profile": {p.Name}})}
		var keys []string
		if p.Keys.RSAMinBits > 0 {
			keys = append(keys, "RSA "+itoa(p.Keys.RSAMinBits)+"–"+itoa(p.Keys.RSAMaxBits))
		}
		keys = append(keys, p.Keys.ECCurves...)
		row.Keys = strings.Join(keys, ", ")
		switch {
		case p.RenewalWindowFixed > 0:
			row.Renewal = "last " + fmtDuration(p.RenewalWindowFixed)
		case p.RenewalWindow > 0 && p.RenewalWindow <= 1:
			row.Renewal = "last " + itoa(int(p.RenewalWindow*100+0.5)) + "% of the lifetime"
		default:
			row.Renewal = "last third of the lifetime"
		}
		if p.RenewalGrace > 0 {
			row.Renewal += ", " + fmtDuration(p.RenewalGrace) + " grace"
		}
		pg.Profiles = append(pg.Profiles, row)
	}
	h.render(w, http.StatusOK, "cas", h.newView(rq, "CAs and profiles", "cas", pg))
	return nil
}
