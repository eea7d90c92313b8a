package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/store"
)

func cmdRequests(ctx context.Context, e env, args []string) error {
	usage := usageError{"usage: scepter requests list [--status pending] | requests approve ID | requests reject ID --reason TEXT"}
	if len(args) == 0 {
		return usage
	}
	var sf storeFlags
	var status, reason string
	fs := newFlagSet(e, "requests "+args[0], "requests list|approve ID|reject ID --reason TEXT")
	sf.register(fs)
	maxArgs := 1
	switch args[0] {
	case "list":
		fs.StringVar(&status, "status", "pending", "pending, issued, rejected, or all")
		maxArgs = 0
	case "reject":
		fs.StringVar(&reason, "reason", "", "why (the client sees it)")
	case "approve":
	default:
		return usage
	}
	if err := parseFlags(fs, e, args[1:], maxArgs, sf.sections()); err != nil {
		return err
	}
	if maxArgs == 1 && fs.NArg() != 1 {
		return usage
	}
	svc, st, err := sf.service(ctx, args[0] == "approve")
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "list":
		f := store.RequestFilter{Status: pki.RequestStatus(status), Limit: 1000}
		if status == "all" {
			f.Status = ""
		}
		reqs, err := svc.Requests(ctx, f)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tPROFILE\tCREATED\tREQUESTER\tSUBJECT")
		for _, r := range reqs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.Profile, r.CreatedAt.UTC().Format(time.RFC3339), r.RequesterAddr, r.Subject)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "%d request(s)\n", len(reqs))
	case "approve":
		res, err := svc.Approve(ctx, fs.Arg(0), cliActor())
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "approved %s: issued %s serial %s; the client collects it with its next poll\n", fs.Arg(0), res.Record.Subject, res.Record.SerialHex)
	case "reject":
		if strings.TrimSpace(reason) == "" {
			return usageError{"--reason is required"}
		}
		if err := svc.Reject(ctx, fs.Arg(0), reason, cliActor()); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "rejected %s\n", fs.Arg(0))
	}
	return nil
}

// service builds the enrollment service for a CLI command on an existing
// data directory; withCA loads the CA (to issue on approval) without ever
// creating one.
func (s *storeFlags) service(ctx context.Context, withCA bool) (*enroll.Service, store.Store, error) {
	st, err := s.openExistingStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	profiles, err := s.profileSet()
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	var authority *ca.Authority
	if withCA {
		if _, err := os.Stat(filepath.Join(s.dataDir, "ca", "issuing.crt")); errors.Is(err, fs.ErrNotExist) {
			st.Close()
			return nil, nil, fmt.Errorf("no CA in %s", s.dataDir)
		}
		if authority, _, err = ca.LoadOrCreate(s.dataDir, ca.InitOptions{}, pki.SystemClock{}); err != nil {
			st.Close()
			return nil, nil, err
		}
	}
	svc, err := enroll.New(st, authority, pki.SystemClock{}, slog.New(slog.DiscardHandler), enroll.Config{Profiles: profiles, DefaultProfile: s.defaultProfile})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return svc, st, nil
}
