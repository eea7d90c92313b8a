package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

const auditUsage = "usage: scepter audit list [--since T] [--until T] [--serial S] [--type T] [--limit N] [--json] | scepter audit verify"

func cmdAudit(ctx context.Context, e env, args []string) error {
	sub, err := subcommand(e, args, auditUsage)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		return auditList(ctx, e, args[1:])
	case "verify":
		return auditVerify(ctx, e, args[1:])
	}
	return usageError{fmt.Sprintf("unknown audit command %q: want list or verify", sub)}
}

// auditEventJSON is the stable JSON shape of `audit list --json`.
type auditEventJSON struct {
	ID            int64     `json:"id"`
	Time          time.Time `json:"time"`
	Type          string    `json:"type"`
	Actor         string    `json:"actor"`
	Outcome       string    `json:"outcome,omitempty"`
	Profile       string    `json:"profile,omitempty"`
	Serial        string    `json:"serial,omitempty"`
	IssuerID      string    `json:"issuer_id,omitempty"`
	Subject       string    `json:"subject,omitempty"`
	TransactionID string    `json:"transaction_id,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Detail        string    `json:"detail,omitempty"`
}

// timeFlag takes an RFC 3339 time, a date (2026-11-30), or a duration back
// from now ("24h", "7d").
type timeFlag struct {
	t   time.Time
	now func() time.Time
}

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f *timeFlag) Set(s string) error {
	t, err := f.parse(s)
	if err != nil {
		return err
	}
	// The store reads the zero time as no bound, and the trail holds
	// nothing before 1970: such a bound would list everything, or nothing.
	if t.Before(time.Unix(0, 0)) {
		return fmt.Errorf("want a time from 1970 on")
	}
	f.t = t
	return nil
}

func (f *timeFlag) parse(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	var d durationDays
	if err := d.Set(s); err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time (2026-11-30T12:00:00Z), a date (2026-11-30) or a duration back from now (24h, 7d)")
	}
	return f.now().Add(-time.Duration(d)), nil
}

func auditList(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	clock := pki.SystemClock{}
	since, until := timeFlag{now: clock.Now}, timeFlag{now: clock.Now}
	var serial, typ string
	var limit int
	var asJSON bool
	fs := newFlagSet(e, "audit list", "audit list [--since T] [--until T] [--serial S] [--type T] [--limit N] [--json]")
	sf.register(fs)
	fs.Var(&since, "since", "only events at or after T (RFC 3339, a date, or a duration back from now: 24h, 7d)")
	fs.Var(&until, "until", "only events before T (same forms as --since)")
	fs.StringVar(&serial, "serial", "", "only events about the certificate with this serial (hex)")
	fs.StringVar(&typ, "type", "", "only events of this type (certificate.issued, certificate.revoked, request.refused, …)")
	fs.IntVar(&limit, "limit", 100, "at most this many events, newest first (0: all)")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	if limit < 0 {
		return usageError{"--limit must not be negative"}
	}
	// A window that ends before it starts would list nothing and look like
	// a quiet trail (--since 24h --until 48h: both count back from now).
	if !since.t.IsZero() && !until.t.IsZero() && !until.t.After(since.t) {
		return usageError{fmt.Sprintf("--until %s is not after --since %s: no event can match (a duration counts back from now)",
			until.String(), since.String())}
	}
	if serial != "" {
		sn, err := admin.NormalizeSerial(serial)
		if err != nil {
			return usageError{pki.ErrorMessage(err)}
		}
		serial = sn
	}
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	f := store.AuditFilter{Type: typ, SerialHex: serial, Since: since.t, Until: until.t}
	out := []auditEventJSON{}
	for limit == 0 || len(out) < limit {
		f.Limit = 1000
		if limit > 0 {
			f.Limit = min(1000, limit-len(out))
		}
		page, err := st.ListAudit(ctx, f)
		if err != nil {
			return err
		}
		for _, ev := range page {
			out = append(out, auditEventJSON{ID: ev.ID, Time: ev.Time.UTC(), Type: ev.Type, Actor: ev.Actor, Outcome: ev.Outcome,
				Profile: ev.Profile, Serial: ev.SerialHex, IssuerID: ev.IssuerID, Subject: ev.Subject,
				TransactionID: ev.TransactionID, Reason: ev.Reason, Detail: ev.Detail})
		}
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	// A misspelt type (certificate.revoke) matches nothing, which would
	// look like a quiet trail: refused, as the API refuses it, unless it
	// is one scepter writes or one an event of the trail has (another
	// version wrote it).
	if len(out) == 0 && typ != "" && !slices.Contains(ops.EventTypes, typ) {
		ever, err := st.ListAudit(ctx, store.AuditFilter{Type: typ, Limit: 1})
		if err != nil {
			return err
		}
		if len(ever) == 0 {
			return usageError{fmt.Sprintf("--type %.64q: no such event type, and no event of it in the trail; want one of %s",
				typ, strings.Join(ops.EventTypes, ", "))}
		}
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
		return cutNote(ctx, e, st, f, out, limit)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tTYPE\tACTOR\tOUTCOME\tSERIAL\tSUBJECT\tREASON · DETAIL")
	cut := false
	for _, ev := range out {
		actor, actorCut := tableCell(ev.Actor)
		subject, subjectCut := tableCell(ev.Subject)
		cut = cut || actorCut || subjectCut
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.ID, ev.Time.Format(time.RFC3339), printable(ev.Type), actor,
			printable(ev.Outcome), printable(pki.ShownSerial(ev.Serial)), subject, reasonDetail(ev.Reason, ev.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%d event(s)\n", len(out))
	if cut {
		fmt.Fprintf(e.stderr, "actors and subjects longer than %d characters are cut in this table (…); --json shows them whole\n", maxTableCell)
	}
	return cutNote(ctx, e, st, f, out, limit)
}

// reasonDetail is the table's last cell: the typed reason, then " · " and
// the detail, as the console's audit page shows them. Run together with a
// space, the reason's end was nowhere to see ("not ours request
// BQJICIJNLGCBTL55"; r91 D5).
func reasonDetail(reason, detail string) string {
	reason, detail = strings.TrimSpace(reason), strings.TrimSpace(detail)
	if reason != "" && detail != "" {
		return printable(reason) + " · " + printable(detail)
	}
	return printable(reason + detail)
}

// cutNote says on stderr when --limit cut the listing, so that the
// newest 100 are not taken for all (the restore's steps list what to redo
// with it); it prints nothing when nothing more matches.
func cutNote(ctx context.Context, e env, st store.Store, f store.AuditFilter, out []auditEventJSON, limit int) error {
	if limit == 0 || len(out) < limit {
		return nil
	}
	f.BeforeID, f.Limit = out[len(out)-1].ID, 1
	more, err := st.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	if len(more) > 0 {
		fmt.Fprintf(e.stderr, "more events match: only the newest %d are listed (--limit); --limit 0 lists them all\n", limit)
	}
	return nil
}

// errAuditBroken makes `audit verify` exit 1 after it printed the problem.
var errAuditBroken = errors.New("the audit trail does not verify")

func auditVerify(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	fs := newFlagSet(e, "audit verify", "audit verify")
	sf.register(fs)
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := audit.VerifyTrail(ctx, st)
	if err != nil {
		return err
	}
	// Printed before the verdict, and also when the chain breaks later:
	// times read across a step back mislead whoever orders events by them.
	for _, step := range rep.TimeSteps {
		fmt.Fprintf(e.stdout, "WARNING: %s\n", step)
	}
	if !rep.OK() {
		fmt.Fprintf(e.stdout, "FAILED after %d good record(s): %s\n", rep.Checked, printable(rep.Problem.Error()))
		return errAuditBroken
	}
	fmt.Fprintf(e.stdout, "OK: %d record(s) checked, the chain is intact (newest record %d)", rep.Checked, rep.LastID)
	if n := len(rep.TimeSteps); n > 0 {
		fmt.Fprintf(e.stdout, "; %d step(s) back of the clock, see the warning(s) above", n)
	}
	fmt.Fprintln(e.stdout)
	return nil
}
