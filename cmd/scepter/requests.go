package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/cashare"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/keys"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

func cmdRequests(ctx context.Context, e env, args []string) error {
	usage := usageError{"usage: scepter requests list [--status pending] | requests approve ID | requests reject ID --reason TEXT"}
	if _, err := subcommand(e, args, usage.msg); err != nil {
		return err
	}
	var sf storeFlags
	var status, reason string
	var asJSON bool
	var p11 pkcs11Flags
	var publicURL string
	fs := newFlagSet(e, "requests "+args[0], "requests list|approve ID|reject ID --reason TEXT")
	sf.register(fs)
	maxArgs := 1
	switch args[0] {
	case "list":
		fs.StringVar(&status, "status", "pending", "pending, issued, rejected, expired (pending when its retention ran out), or all")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		maxArgs = 0
	case "reject":
		fs.StringVar(&reason, "reason", "", "why (the client sees it)")
	case "approve":
		p11.register(fs) // the CA's keys, when they are in a token
		fs.StringVar(&publicURL, "public-url", "", "base URL of the CRL, OCSP and caIssuers URLs in the certificate (default: the one 'scepter serve' last ran with on this data directory)")
	default:
		return usage
	}
	if err := parseFlags(fs, e, args[1:], maxArgs, sf.sections()); err != nil {
		return err
	}
	if maxArgs == 1 && fs.NArg() != 1 {
		return usage
	}
	id := fs.Arg(0)
	if maxArgs == 1 && strings.TrimSpace(id) == "" {
		return usageError{fmt.Sprintf("request ID %q is blank: give one that 'scepter requests list' shows", id)}
	}
	if args[0] == "reject" {
		// The device is sent the reason as it is (admin.Reject checks it
		// too); a bad one is a usage error, found before the store opens.
		if err := enroll.CheckRejectReason(reason); err != nil {
			return usageError{"--reason: " + pki.ErrorMessage(err)}
		}
	}
	if args[0] == "approve" {
		token, err := p11.open()
		if err != nil {
			return err
		}
		if token != nil {
			defer token.Close()
		}
		svc, st, err := sf.enrollService(ctx, token, publicURL)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := requestExists(ctx, st, id); err != nil {
			return err
		}
		res, err := svc.Approve(ctx, id, cliActor())
		if err != nil {
			return serviceError(err)
		}
		fmt.Fprintf(e.stdout, "approved %s: issued %s serial %s; the client collects it with its next poll\n", printable(id), printable(res.Record.Subject), pki.ShownSerial(res.Record.SerialHex))
		return nil
	}
	svc, st, err := sf.adminService(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "list":
		switch pki.RequestStatus(status) {
		case pki.RequestPending, pki.RequestIssued, pki.RequestRejected, pki.RequestExpired, "all":
		default:
			return usageError{fmt.Sprintf("--status %q: want pending, issued, rejected, expired or all", status)}
		}
		f := store.RequestFilter{Status: pki.RequestStatus(status)}
		if status == "all" {
			f.Status = ""
		}
		reqs, err := svc.AllRequests(ctx, f)
		if err != nil {
			return err
		}
		if asJSON {
			return writeRequestsJSON(e, reqs)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tPROFILE\tPROTOCOL\tCREATED\tREQUESTER\tSUBJECT")
		for _, r := range reqs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(r.ID), printable(string(r.Status)), printable(r.Profile),
				printable(string(r.Protocol)), r.CreatedAt.UTC().Format(time.RFC3339), printable(r.RequesterAddr), printable(r.Subject))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%d request(s)\n", len(reqs))
	case "reject":
		if strings.TrimSpace(reason) == "" {
			return usageError{"--reason is required"}
		}
		if err := requestExists(ctx, st, id); err != nil {
			return err
		}
		if err := svc.Reject(ctx, id, reason, cliActor()); err != nil {
			return serviceError(err)
		}
		fmt.Fprintf(e.stdout, "rejected %s\n", printable(id))
	}
	return nil
}

// requestExists refuses an ID the store holds no request under, quoted as
// the other commands quote what they did not find ("no request \"x\"");
// the services' own refusal, unquoted, is the API's.
func requestExists(ctx context.Context, st store.Store, id string) error {
	_, err := st.Request(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no request %q: 'scepter requests list --status all' shows the IDs", pki.Clip(id, 80))
	case err != nil:
		return serviceError(fmt.Errorf("request %q: %w", id, err))
	}
	return nil
}

// adminService builds the admin service for a CLI command on an existing
// data directory; it needs no CA.
func (s *storeFlags) adminService(ctx context.Context) (*admin.Service, store.Store, error) {
	st, profiles, err := s.storeAndProfiles(ctx)
	if err != nil {
		return nil, nil, err
	}
	return admin.New(st, pki.SystemClock{}, nil, profiles, s.defaultProfile), st, nil
}

// storeAndProfiles opens the store of an existing data directory and reads
// the configured profiles.
func (s *storeFlags) storeAndProfiles(ctx context.Context) (store.Store, map[string]pki.Profile, error) {
	st, err := s.openExistingStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	profiles, err := s.profileSet()
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, profiles, nil
}

// enrollService builds the enrollment service for a CLI command that
// issues (approving a held request). It loads the CA read-only, as it is on
// disk: it never creates one, and never promotes a next CA, which is the
// running server's job.
//
// With token (the CA's keys are in a PKCS#11 token) the keys are opened
// there; without it a CA whose keys are in a token loads, but cannot sign.
// publicURL, when set, replaces the public URL the server saved.
func (s *storeFlags) enrollService(ctx context.Context, token keys.Token, publicURL string) (*enroll.Service, store.Store, error) {
	st, profiles, err := s.storeAndProfiles(ctx)
	if err != nil {
		return nil, nil, err
	}
	// A next CA the store records as discarded is set aside, as a server
	// does, so its copy here is not taken for the current CA.
	authority, _, err := loadCLICA(ctx, st, s.dataDir, token, pki.SystemClock{})
	if errors.Is(err, ca.ErrNoCA) {
		st.Close()
		return nil, nil, fmt.Errorf("no CA in %s: run 'scepter serve --data-dir %s' first, or pass the --data-dir the server uses", s.dataDir, shellQuote(s.dataDir))
	}
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	// Approving re-applies the profile's policy; the request's
	// authentication was checked when it was held, so no challenge
	// provider is needed here.
	// Certificates issued here point where the server's do. Without a
	// URL they would carry no CRL, OCSP or caIssuers URL at all, and their
	// revocation would reach no relying party.
	if publicURL != "" {
		u, err := parsePublicURL(publicURL)
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		publicURL = strings.TrimRight(u.String(), "/")
	} else {
		publicURL, err = savedPublicURL(s.dataDir)
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		if publicURL == "" {
			st.Close()
			return nil, nil, usageError{fmt.Sprintf("no public URL for the certificate's CRL, OCSP and caIssuers URLs: %s, which 'scepter serve' writes at every start, is missing; "+
				"pass --public-url (the server's), or start the server on this data directory once", filepath.Join(s.dataDir, publicURLFile))}
		}
	}
	// Like a server's, only while this CA is the store's current one: on a
	// node that lacks the next CA's keys after a switch, an approval would
	// issue from the CA the other nodes have left.
	issuerReady := func(ctx context.Context) error {
		return cashare.IssuesCurrent(ctx, st, authority, pki.SystemClock{}.Now())
	}
	svc, err := enroll.New(st, authority, pki.SystemClock{}, nil, enroll.Config{Profiles: profiles, DefaultProfile: s.defaultProfile,
		PublicURL: publicURL, IssuerReady: issuerReady})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, st, nil
}

// requestJSON is the stable JSON shape of `requests list --json`.
type requestJSON struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	Profile       string    `json:"profile"`
	Protocol      string    `json:"protocol"`
	TransactionID string    `json:"transaction_id"`
	Subject       string    `json:"subject"`
	SANs          []string  `json:"sans"`
	RequesterAddr string    `json:"requester_addr"`
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	RenewedFrom   string    `json:"renewed_from,omitempty"`
	DecidedBy     string    `json:"decided_by,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Serial        string    `json:"serial,omitempty"`
}

func writeRequestsJSON(e env, reqs []pki.EnrollmentRequest) error {
	out := make([]requestJSON, 0, len(reqs))
	for _, r := range reqs {
		out = append(out, requestJSON{ID: r.ID, Status: string(r.Status), Profile: r.Profile, Protocol: string(r.Protocol), TransactionID: r.TransactionID,
			Subject: r.Subject, SANs: nonNil(r.SANs), RequesterAddr: r.RequesterAddr, CreatedAt: r.CreatedAt.UTC(),
			ExpiresAt: r.ExpiresAt.UTC(), RenewedFrom: r.RenewedFrom, DecidedBy: r.DecidedBy, Reason: r.Reason, Serial: r.CertSerialHex})
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
