package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/csr"
	"github.com/scepter/scepter/internal/pki"
)

const challengeUsage = "usage: scepter challenge new [--ttl 60m] [--profile NAME] [--subject DN] [--dns NAME] [--email ADDR] | challenge list [--json]"

func cmdChallenge(ctx context.Context, e env, args []string) error {
	sub, err := subcommand(e, args, challengeUsage)
	if err != nil {
		return err
	}
	switch sub {
	case "new":
		return challengeNew(ctx, e, args[1:])
	case "list":
		return challengeList(ctx, e, args[1:])
	}
	return usageError{challengeUsage}
}

func challengeNew(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var spec struct {
		ttl              challengeTTL
		profile, subject string
		dns, emails      stringList
	}
	fs := newFlagSet(e, "challenge new", "challenge new [--ttl 60m] [--profile NAME] [--subject DN] [--dns NAME] [--email ADDR]")
	sf.register(fs)
	spec.ttl = challengeTTL(60 * time.Minute)
	fs.Var(&spec.ttl, "ttl", "how long the challenge stays valid, "+challengeTTLRange+" (e.g. 60m, 24h, 30d)")
	fs.StringVar(&spec.profile, "profile", "", "the profile it is valid for (default: the default profile)")
	fs.StringVar(&spec.subject, "subject", "", "bind it to this subject, e.g. 'CN=device-1,O=Acme'; a request may then carry no subject alternative name but those of --dns and --email")
	fs.Var(&spec.dns, "dns", "bind it to these DNS names (repeatable): the request may name no others, and no IP address or URI")
	fs.Var(&spec.emails, "email", "bind it to these email addresses (repeatable): the request may name no others")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	// A binding asked for and left empty (an unset shell variable) must
	// not mint a challenge bound to nothing.
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if (fl.Name == "subject" || fl.Name == "dns" || fl.Name == "email") && strings.TrimSpace(fl.Value.String()) == "" && err == nil {
			err = usageError{fmt.Sprintf("--%s is empty: a challenge bound to nothing would enroll any name", fl.Name)}
		}
	})
	if err != nil {
		return err
	}
	if spec.subject != "" {
		if _, err := csr.ParseDN(spec.subject); err != nil {
			return usageError{"--subject: " + err.Error()}
		}
	}
	if err := checkSecretOut(e); err != nil {
		return err
	}
	svc, st, err := sf.adminService(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	secret, ch, err := svc.NewChallengeFor(ctx, admin.ChallengeSpec{TTL: time.Duration(spec.ttl), Profile: spec.profile, Subject: spec.subject,
		DNSNames: spec.dns, Emails: spec.emails, Actor: cliActor()})
	if err != nil {
		if pki.ErrorCode(err) == pki.EBadRequest {
			// A profile or binding refused (the API's 422: one no
			// enrollment could use) is a flag value to change, exit 2 as a
			// --ttl out of range. The refusal's message already holds its
			// cause: the chain would say it twice.
			return usageError{pki.ErrorMessage(err)}
		}
		return serviceError(err)
	}
	// The secret alone on stdout, so scripts can capture it. Nobody else
	// ever sees it: if it cannot be written, the challenge is deleted.
	if werr := writeSecret(e, secret); werr != nil {
		if err := svc.DeleteChallenge(ctx, ch.ID, cliActor()); err != nil {
			return fmt.Errorf("the challenge could not be written to stdout (%v), and deleting it failed: %w; delete it in the console or with the API (DELETE /api/v1/challenges/%s)", werr, err, ch.ID)
		}
		return fmt.Errorf("the challenge could not be written to stdout (%v); it was deleted", werr)
	}
	bound := ""
	if len(ch.BoundSubject) > 0 || len(spec.dns)+len(spec.emails) > 0 {
		// The binding as it was read (as 'challenge list' shows it), not
		// as typed: "CN=x\ " and "CN=x\20" are one name.
		var names []string
		if len(ch.BoundSubject) > 0 {
			names = append(names, csr.NameString(ch.BoundSubject))
		}
		bound = fmt.Sprintf(", bound to %s", printable(strings.Join(append(append(names, spec.dns...), spec.emails...), " ")))
	}
	// The ID, which 'challenge list' shows, labelled so that nobody takes
	// it for the challenge.
	fmt.Fprintf(e.stderr, "the line above is the one-time challenge (id %s, for 'challenge list') for profile %s%s, valid until %s\n", ch.ID, ch.Profile, bound, ch.ExpiresAt.Format(time.RFC3339))
	return nil
}

// challengeTTLRange is the lifetime the admin service accepts for a
// challenge, as help and errors say it.
var challengeTTLRange = admin.ChallengeTTLRange()

// challengeTTL is --ttl of challenge new: whole days ("30d") or a Go
// duration, checked against the service's bounds while the flags are
// parsed, so every value out of range gets the same usage error.
type challengeTTL time.Duration

func (d *challengeTTL) String() string { return time.Duration(*d).String() }

func (d *challengeTTL) Set(s string) error {
	bad := fmt.Errorf("want a lifetime %s, such as 60m, 24h or 30d", challengeTTLRange)
	var v time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > int(admin.MaxChallengeTTL/(24*time.Hour)) {
			return bad
		}
		v = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if v, err = time.ParseDuration(s); err != nil {
			return bad
		}
	}
	if v < admin.MinChallengeTTL || v > admin.MaxChallengeTTL {
		return bad
	}
	*d = challengeTTL(v)
	return nil
}

func challengeList(ctx context.Context, e env, args []string) error {
	var sf storeFlags
	var asJSON bool
	fs := newFlagSet(e, "challenge list", "challenge list [--json]")
	sf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(fs, e, args, 0, sf.sections()); err != nil {
		return err
	}
	svc, st, err := sf.adminService(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := svc.AllChallenges(ctx)
	if err != nil {
		return err
	}
	now := pki.SystemClock{}.Now()
	type challengeJSON struct {
		ID         string    `json:"id"`
		Profile    string    `json:"profile"`
		Subject    string    `json:"bound_subject,omitempty"`
		Names      []string  `json:"bound_names,omitempty"`
		State      string    `json:"state"`
		CreatedAt  time.Time `json:"created_at"`
		ExpiresAt  time.Time `json:"expires_at"`
		CreatedBy  string    `json:"created_by"`
		FailedUses int       `json:"failed_uses"`
	}
	var out []challengeJSON
	for _, c := range list {
		st := "unused"
		switch {
		case !c.ConsumedAt.IsZero():
			st = "used"
		case !c.LockedAt.IsZero():
			st = "locked"
		case !now.Before(c.ExpiresAt):
			st = "expired"
		}
		j := challengeJSON{ID: c.ID, Profile: c.Profile, Names: c.BoundSANs, State: st, CreatedAt: c.CreatedAt.UTC(), ExpiresAt: c.ExpiresAt.UTC(),
			CreatedBy: c.CreatedBy, FailedUses: c.FailedUses}
		if len(c.BoundSubject) > 0 {
			j.Subject = csr.NameString(c.BoundSubject)
		}
		out = append(out, j)
	}
	if asJSON {
		if out == nil {
			out = []challengeJSON{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	// FAILED: presentations for another profile or identity, which lock
	// the challenge at the third (one near its lock shows here).
	fmt.Fprintln(tw, "ID\tPROFILE\tSTATE\tFAILED\tEXPIRES\tBOUND TO\tCREATED BY")
	for _, c := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", printable(c.ID), printable(cmp.Or(c.Profile, "(default)")), printable(c.State), c.FailedUses, c.ExpiresAt.Format(time.RFC3339),
			printable(strings.TrimSpace(c.Subject+" "+strings.Join(c.Names, " "))), printable(c.CreatedBy))
	}
	return tw.Flush()
}

// cliActor names the operator for the audit trail.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}
