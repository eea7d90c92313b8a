package main

import (
	"context"
	"fmt"
	"os/user"
	"time"
)

func cmdChallenge(ctx context.Context, e env, args []string) error {
	const usage = "usage: scepter challenge new [--ttl 60m] [--profile NAME] [--data-dir DIR]"
	sub, err := subcommand(e, args, usage)
	if err != nil {
		return err
	}
	if sub != "new" {
		return usageError{usage}
	}
	var sf storeFlags
	var ttl time.Duration
	var profile string
	fs := newFlagSet(e, "challenge new", "challenge new [--ttl 60m] [--profile NAME]")
	sf.register(fs)
	fs.DurationVar(&ttl, "ttl", 60*time.Minute, "how long the challenge stays valid")
	fs.StringVar(&profile, "profile", "", "restrict the challenge to one profile")
	if err := parseFlags(fs, e, args[1:], 0, sf.sections()); err != nil {
		return err
	}
	svc, st, err := sf.adminService(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	secret, ch, err := svc.NewChallenge(ctx, ttl, profile, cliActor())
	if err != nil {
		return err
	}
	// The secret alone on stdout, so scripts can capture it.
	fmt.Fprintln(e.stdout, secret)
	fmt.Fprintf(e.stderr, "one-time challenge %s, valid until %s\n", ch.ID, ch.ExpiresAt.Format(time.RFC3339))
	return nil
}

// cliActor names the operator for the audit trail.
func cliActor() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}
