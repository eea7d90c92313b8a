package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
)

const adminUsage = `usage: scepter admin token new --name N --role admin|operator|auditor [--ttl 90d]
       scepter admin token list | token revoke ID|NAME
       scepter admin user add NAME --role admin|operator|auditor --password-file F
       scepter admin user list | user remove NAME`

// cmdAdmin manages the admin API's tokens and the console's users, beside a
// running server.
func cmdAdmin(ctx context.Context, e env, args []string) error {
	group, err := subcommand(e, args, adminUsage)
	if err != nil {
		return err
	}
	if group != "token" && group != "user" {
		return usageError{fmt.Sprintf("unknown admin command %q: want token or user\n%s", group, adminUsage)}
	}
	sub, err := subcommand(e, args[1:], adminUsage)
	if err != nil {
		return err
	}
	var sf storeFlags
	var name, role, passwordFile string
	var ttl tokenTTL
	fs := newFlagSet(e, "admin "+group+" "+sub, strings.TrimPrefix(adminUsage, "usage: scepter "))
	sf.register(fs)
	maxArgs := 1
	switch group + " " + sub {
	case "token new":
		fs.StringVar(&name, "name", "", "the token's name (who or what uses it)")
		fs.StringVar(&role, "role", "", "admin, operator or auditor")
		fs.Var(&ttl, "ttl", "lifetime (e.g. 90d, 720h); 0 or unset: no expiry")
		maxArgs = 0
	case "user add":
		fs.StringVar(&role, "role", "", "admin, operator or auditor")
		fs.StringVar(&passwordFile, "password-file", "", "file holding the password (its first line; at least 12 characters and at most 1024 bytes in UTF-8, one of them visible: not all white space or invisible characters)")
	case "token list", "user list":
		maxArgs = 0
	case "token revoke", "user remove":
	default:
		return usageError{fmt.Sprintf("unknown admin %s command %q\n%s", group, sub, adminUsage)}
	}
	if err := parseFlags(fs, e, args[2:], maxArgs, sf.sections()); err != nil {
		return err
	}
	if maxArgs == 1 && fs.NArg() != 1 {
		return usageError{adminUsage}
	}
	var password string
	if group+" "+sub == "user add" {
		// A bad --password-file is a usage error, found before the store
		// is opened.
		if role == "" || passwordFile == "" {
			return usageError{"--role and --password-file are required"}
		}
		if password, err = passwordFromFile("--password-file", passwordFile); err != nil {
			return err
		}
	}
	st, err := sf.openExistingStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	au := auth.New(st, pki.SystemClock{}, nil)
	me := auth.CLI(cliActor())
	switch group + " " + sub {
	case "token new":
		return tokenNew(ctx, e, au, me, name, role, time.Duration(ttl))
	case "token list":
		return tokenList(ctx, e, au, me)
	case "token revoke":
		t, err := au.RevokeToken(ctx, fs.Arg(0), me)
		if err != nil {
			return serviceError(err)
		}
		fmt.Fprintf(e.stdout, "revoked token %s (%s)\n", printable(t.ID), printable(t.Name))
	case "user add":
		return userAdd(ctx, e, au, me, fs.Arg(0), role, password)
	case "user list":
		return userList(ctx, e, au, me)
	case "user remove":
		// Through ops, as the API does: ALICE removes the user stored as
		// alice, and the audit event names alice.
		var passwordGone string
		var passwordErr error
		o := ops.New(ops.Config{Store: st, Auth: au, Clock: pki.SystemClock{}, UserRemoved: func(name string) {
			passwordGone, passwordErr = removeAdminPasswordFile(sf.dataDir, name)
		}})
		if err := o.RemoveUser(ctx, me, fs.Arg(0)); err != nil {
			return serviceError(err)
		}
		fmt.Fprintf(e.stdout, "removed user %s and ended their sessions\n", fs.Arg(0))
		if passwordGone != "" {
			fmt.Fprintf(e.stdout, "removed %s, which held the user's generated password\n", passwordGone)
		}
		if passwordErr != nil {
			return passwordErr
		}
	}
	return nil
}

// tokenTTL is the --ttl of "admin token new", read as the API reads it
// (auth.ParseTokenTTL): only 0 means no expiry, never "0d" or "0s".
type tokenTTL time.Duration

func (t *tokenTTL) String() string { return time.Duration(*t).String() }
func (t *tokenTTL) Set(s string) error {
	d, err := auth.ParseTokenTTL(s)
	if err != nil {
		return errors.New(pki.ErrorMessage(err))
	}
	*t = tokenTTL(d)
	return nil
}

func tokenNew(ctx context.Context, e env, au *auth.Service, me auth.Principal, name, role string, ttl time.Duration) error {
	if name == "" || role == "" {
		return usageError{"--name and --role are required"}
	}
	if err := checkSecretOut(e); err != nil {
		return err
	}
	secret, t, err := au.NewToken(ctx, name, pki.Role(role), ttl, me)
	if err != nil {
		// A bad --name or --role is a usage error, as in 'admin user add'.
		return argumentError(err)
	}
	expires := "never"
	if !t.ExpiresAt.IsZero() {
		expires = t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(e.stderr, "token %s (%s), role %s, expires %s; the secret is shown this once:\n", t.ID, t.Name, t.Role, expires)
	// Nobody else ever sees it: if it cannot be written, the token is
	// revoked.
	if werr := writeSecret(e, secret); werr != nil {
		if _, err := au.RevokeToken(ctx, t.ID, me); err != nil {
			return fmt.Errorf("the token's secret could not be written to stdout (%v), and revoking it failed: %w; revoke it with 'scepter admin token revoke %s'", werr, err, t.ID)
		}
		return fmt.Errorf("the token's secret could not be written to stdout (%v); token %s was revoked", werr, t.ID)
	}
	return nil
}

func tokenList(ctx context.Context, e env, au *auth.Service, me auth.Principal) error {
	list, err := au.Tokens(ctx, me)
	if err != nil {
		return serviceError(err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATE\tCREATED\tEXPIRES\tLAST USED")
	for _, t := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(t.ID), printable(t.Name), printable(string(t.Role)), t.State(time.Now()),
			day(t.CreatedAt), day(t.ExpiresAt), day(t.LastUsedAt))
	}
	return tw.Flush()
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func userAdd(ctx context.Context, e env, au *auth.Service, me auth.Principal, name, role, password string) error {
	u, err := au.AddUser(ctx, name, pki.Role(role), password, me)
	if err != nil {
		return argumentError(err)
	}
	fmt.Fprintf(e.stdout, "added user %s, role %s\n", u.Name, u.Role)
	return nil
}

func userList(ctx context.Context, e env, au *auth.Service, me auth.Principal) error {
	list, err := au.Users(ctx, me)
	if err != nil {
		return serviceError(err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tLAST LOGIN\tLOCKED UNTIL")
	for _, u := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable(u.Name), printable(string(u.Role)), day(u.CreatedAt), day(u.LastLoginAt), day(u.LockedUntil))
	}
	return tw.Flush()
}
