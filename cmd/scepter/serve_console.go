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

	"github.com/scepter/scepter/internal/admin"
	"github.com/scepter/scepter/internal/api"
	"github.com/scepter/scepter/internal/auth"
	"github.com/scepter/scepter/internal/ca"
	"github.com/scepter/scepter/internal/console"
	"github.com/scepter/scepter/internal/credential"
	"github.com/scepter/scepter/internal/enroll"
	"github.com/scepter/scepter/internal/ops"
	"github.com/scepter/scepter/internal/pki"
	"github.com/scepter/scepter/internal/server"
	"github.com/scepter/scepter/internal/store"
)

// adminPasswordFile keeps the password of the console's first user, made on
// a start that finds no user, like the generated challenge.
const adminPasswordFile = "admin-password.txt"

// webAdmin is the admin API and the console, and what the start prints
// about them.
type webAdmin struct {
	api     *api.Handler
	console *console.Handler
	auth    *auth.Service
	// password is the generated admin password, shown this once ("" when
	// none was made now).
	password, passwordFile string
	// noUser: the store has no console user and none was made (the
	// password file of an earlier one is still there).
	noUser bool
}

// newWebAdmin builds the operations layer, the API and the console, and
// makes the first console user when there is none.
func (f *serveFlags) newWebAdmin(ctx context.Context, st store.Store, adm *admin.Service, svc *enroll.Service, authority *ca.Authority,
	kick ops.Kicker, clock pki.Clock, log *slog.Logger) (*webAdmin, error) {
	au := auth.New(st, clock, log)
	o := ops.New(ops.Config{Store: st, Admin: adm, Enroll: svc, Auth: au, Authority: authority, Clock: clock, Log: log, Kick: kick})
	c, err := console.New(o, log, console.Options{})
	if err != nil {
		return nil, err
	}
	w := &webAdmin{api: api.New(o, log), console: c, auth: au, passwordFile: filepath.Join(f.dataDir, adminPasswordFile)}
	users, err := st.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return w, nil
	}
	if _, err := os.Stat(w.passwordFile); err == nil {
		// The last user was removed (the API and the CLI allow it), or the
		// store is another one. Neither is a reason for the CA, SCEP, EST,
		// OCSP and CRLs not to start: the console waits for a user, and the
		// file of the earlier password is neither overwritten nor used.
		log.Warn("the store has no console user; add one with 'scepter admin user add', or remove the password file to have an admin user made at the next start",
			"password_file", w.passwordFile)
		w.noUser = true
		return w, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	password, err := credential.RandomToken(20)
	if err != nil {
		return nil, err
	}
	// The file first: a user whose password nobody has must not exist.
	if err := os.WriteFile(w.passwordFile, []byte(password+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("save the admin password: %w", err)
	}
	if _, err := au.AddUser(ctx, "admin", pki.RoleAdmin, password, auth.CLI("system")); err != nil {
		os.Remove(w.passwordFile)
		if pki.ErrorCode(err) == pki.EConflict {
			// Nodes started together on a new store: another one made
			// it between our look and our insert. Its password is in its
			// data directory; this node starts as one that found a user.
			log.Info("another node made the console's admin user at the same time; its password is in that node's data directory")
			return w, nil
		}
		return nil, fmt.Errorf("create the admin user: %w", err)
	}
	w.password = password
	return w, nil
}

// lines says where the console is, and the generated password once,
// unless the output goes to the journal (then only its file).
func (w *webAdmin) lines(httpsBase string, toJournal bool) []string {
	out := []string{"Console:             " + httpsBase + "/ui/ (API: " + httpsBase + "/api/v1/)"}
	switch {
	case w.noUser:
		out = append(out, "Console login:       no console user: add one with 'scepter admin user add NAME --role admin --password-file F' (or remove "+
			w.passwordFile+" to have one made at the next start)")
	case w.password != "" && toJournal:
		out = append(out, "Console login:       admin, password generated, saved in "+w.passwordFile+" (not shown: this output goes to the journal)")
	case w.password != "":
		out = append(out, "Console login:       admin / "+w.password+" (generated, saved in "+w.passwordFile+")")
	}
	return out
}

// consoleOffLine is the banner's word on the console and the API without
// an HTTPS listener: they are not served at all, and the plain listener
// answers /ui/ and /api/ with 404 saying so.
const consoleOffLine = "Console and API:     off (they are served on the HTTPS listener; --est-listen is off)"

// httpsNames are the names the plain listener's redirects to the console
// and the API may name (server.Handlers.HTTPSNames): those of the HTTPS
// certificate, in the order --est-server-name gives them for ours; never
// a wildcard, which is no host to go to.
func (f *serveFlags) httpsNames(cert *server.Certificate) []string {
	names := f.serverNames()
	if f.tlsCert != "" {
		names = certNames(cert.Leaf())
	}
	var out []string
	for _, n := range names {
		if !strings.Contains(n, "*") {
			out = append(out, n)
		}
	}
	return out
}
