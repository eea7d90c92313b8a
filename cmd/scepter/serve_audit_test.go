package main

import (
	"crypto/tls"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/audit"
	"github.com/scepter/scepter/internal/store"
)

// tamperSQLite runs SQL on a stopped server's store, as someone with the
// file would.
func tamperSQLite(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// The reviewer's trail, changed so that no record can be chained to it: a
// server does not start, and says so in the words every refused change
// gives, not with the database's error.
func TestServeRefusesATrailNothingCanBeChainedTo(t *testing.T) {
	for _, c := range []struct {
		name string
		sql  []string
		// found is what serve says it found, before the message.
		found string
	}{
		{"record after the head", []string{`INSERT INTO audit_events (time, type, actor, outcome, reason) VALUES (0, 'certificate.revoked', 'x', 'success', 'x')`},
			"comes after its head"},
		// Renumbered past the head: the CLI wrote records into the gap
		// below it, until the next id met it (r125 D1).
		{"newest record renumbered past the head", []string{`UPDATE audit_events SET id = id + 4 WHERE id = (SELECT MAX(id) FROM audit_events)`},
			"comes after its head"},
		{"older record renumbered past the head", []string{`UPDATE audit_events SET id = (SELECT MAX(id) + 4 FROM audit_events) WHERE id = 2`},
			"comes after its head"},
		{"head removed", []string{`DELETE FROM audit_head`}, "its head is missing, though its records are chained"},
		// Wiped whole: the server would otherwise start a new trail at
		// record 1, as a fresh store's.
		{"records and head removed", []string{`DELETE FROM audit_events`, `DELETE FROM audit_head`}, audit.WipedTrailFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
			if err := serveInProcess(t, nil, args...).stop(); err != nil {
				t.Fatalf("first start: %v", err)
			}
			tamperSQLite(t, filepath.Join(data, "scepter.db"), c.sql...)
			s := serveInProcess(t, nil, args...)
			if !s.ended {
				s.stop()
				t.Fatal("serve started on a trail it cannot append to")
			}
			if s.err == nil || !strings.HasSuffix(s.err.Error(), store.AuditTamperedMessage) || strings.Contains(s.err.Error(), "constraint") {
				t.Errorf("serve: %v; want the message that says the trail was changed outside scepter, without the database's error", s.err)
			}
			if s.err != nil && !strings.Contains(s.err.Error(), c.found) {
				t.Errorf("serve: %v; want it to say %q", s.err, c.found)
			}
			// A revocation is refused the same way (the RA's certificate
			// is one the store holds).
			var serial string
			db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "scepter.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.QueryRow(`SELECT serial_hex FROM certificates LIMIT 1`).Scan(&serial); err != nil {
				t.Fatal(err)
			}
			if out, err := runCLI("certs", "revoke", "--data-dir", data, serial); err == nil ||
				!strings.Contains(err.Error(), store.AuditTamperedMessage) || strings.Contains(err.Error()+out, "constraint") {
				t.Errorf("certs revoke: %v\n%s\nwant the message that says the trail was changed outside scepter", err, out)
			}
		})
	}
}

// A trail changed under a running server: a revocation through the API
// and an EST enrollment are refused with 503 and the reason, as for a
// store outage, not 500 "internal error", and /readyz fails naming the
// audit trail (a load balancer sends clients elsewhere), until the trail
// is mended.
func TestTrailChangedUnderARunningServerIs503(t *testing.T) {
	// Mostly waits on real timers and fsyncs: beside the other such tests,
	// after the package's serial ones.
	t.Parallel()
	s := startServe(t, "")
	secret, err := runCLI("admin", "token", "new", "--name", "ci", "--role", "operator", "--ttl", "1d", "--data-dir", s.dataDir)
	if err != nil {
		t.Fatalf("admin token new: %v\n%s", err, secret)
	}
	secret = strings.TrimSpace(strings.SplitN(secret, "\n", 2)[0])
	db := filepath.Join(s.dataDir, "scepter.db")
	var serial string
	conn, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.QueryRow(`SELECT serial_hex FROM certificates LIMIT 1`).Scan(&serial); err != nil {
		t.Fatal(err)
	}
	tamperSQLite(t, db, `INSERT INTO audit_events (time, type, actor, outcome, reason) VALUES (0, 'certificate.revoked', 'x', 'success', 'x')`)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequest(http.MethodPost, s.estURL+"/api/v1/certificates/"+serial+"/revoke", strings.NewReader(`{"reason":"superseded"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "changed outside scepter") {
		t.Errorf("API revoke: %d %s; want 503 with the reason", resp.StatusCode, body)
	}

	dir := t.TempDir()
	out, err := runCLI("est", "enroll", "--url", s.estURL, "--ca-fingerprint", s.fingerprint, "--subject", "CN=after-tamper",
		"--out", filepath.Join(dir, "c.pem"), "--key-out", filepath.Join(dir, "k.pem"))
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "changed outside scepter") {
		t.Errorf("est enroll: %v\n%s; want 503 with the reason", err, out)
	}

	// /readyz reuses an outcome for 5 s.
	readyURL := strings.TrimSuffix(s.scepURL, "/scep") + "/readyz"
	awaitReady := func(what string, ok func(code int, body string) bool) {
		t.Helper()
		var code int
		var body []byte
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			resp, err := http.Get(readyURL)
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if code = resp.StatusCode; ok(code, string(body)) {
				return
			}
		}
		t.Fatalf("%s: the last answer of /readyz was %d\n%s", what, code, body)
	}
	awaitReady("tampered", func(code int, body string) bool {
		return code == http.StatusServiceUnavailable && strings.HasPrefix(body, "not ready: audit trail\n") &&
			strings.Contains(body, "audit trail: changed outside scepter, no write accepted (run scepter audit verify)")
	})
	tamperSQLite(t, db, `DELETE FROM audit_events WHERE actor = 'x'`)
	awaitReady("mended", func(code int, body string) bool {
		return code == http.StatusOK && strings.Contains(body, "audit trail: ok")
	})
}

// A record edited near the end of the trail is said at ERROR when serve
// starts, naming it and the command to run; the server still starts. An
// intact trail says nothing.
func TestServeLogsAnEditedTail(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
	restart := func() string {
		t.Helper()
		s := serveInProcess(t, nil, args...)
		if s.ended {
			t.Fatalf("serve: %v\n%s", s.err, s.errb.String())
		}
		if err := s.stop(); err != nil {
			t.Fatalf("serve: %v", err)
		}
		return s.errb.String()
	}
	restart()
	if logs := restart(); strings.Contains(logs, "audit trail") {
		t.Errorf("an intact trail is reported at start:\n%s", logs)
	}
	tamperSQLite(t, filepath.Join(data, "scepter.db"), `UPDATE audit_events SET reason = 'x' WHERE id = (SELECT MAX(id) - 1 FROM audit_events)`)
	var edited string
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "scepter.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT CAST(id AS TEXT) FROM audit_events WHERE reason = 'x'`).Scan(&edited); err != nil {
		t.Fatal(err)
	}
	logs := restart()
	var said []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "audit trail") {
			said = append(said, line)
		}
	}
	if len(said) != 1 || !strings.Contains(said[0], "level=ERROR") || !strings.Contains(said[0], "run 'scepter audit verify'") ||
		!strings.Contains(said[0], "record="+edited+" ") {
		t.Errorf("the start says of the trail %q; want one ERROR naming record %s and 'scepter audit verify'", said, edited)
	}
}

// `audit verify` fails a trail wiped with two SQL statements, which the
// chain alone passes, and the next start does not write on it (it would
// start a new trail at record 1, as a fresh store's): it refuses;
// records cut from the end with the head set back still pass: the
// documented limit.
func TestAuditVerifyFailsAWipedTrail(t *testing.T) {
	for _, c := range []struct {
		name    string
		sql     []string
		restart bool
		want    string // "": verifies
	}{
		{"intact", nil, false, ""},
		{"wiped", []string{`DELETE FROM audit_events`, `DELETE FROM audit_head`}, false, "the trail is empty, but the store holds certificates"},
		// The certificates dated an hour back: the start after the wipe
		// comes later than they were recorded by more than a clock's step.
		{"wiped and started on", []string{`DELETE FROM audit_events`, `DELETE FROM audit_head`,
			`UPDATE certificates SET created_at = created_at - 3600000000`}, true, "the trail is empty, but the store holds certificates"},
		{"tail cut, head set back", []string{`DELETE FROM audit_events WHERE id = (SELECT MAX(id) FROM audit_events)`,
			`UPDATE audit_head SET last_id = last_id - 1, count = count - 1, last_hash = (SELECT hash FROM audit_events WHERE id = audit_head.last_id - 1)`}, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			args := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
			serve := func() {
				t.Helper()
				if err := serveInProcess(t, nil, args...).stop(); err != nil {
					t.Fatalf("serve: %v", err)
				}
			}
			serve()
			tamperSQLite(t, filepath.Join(data, "scepter.db"), c.sql...)
			if c.restart {
				s := serveInProcess(t, nil, args...)
				if !s.ended {
					s.stop()
					t.Fatal("serve started on a wiped trail")
				}
				if s.err == nil || !strings.Contains(s.err.Error(), audit.WipedTrailFound) {
					t.Errorf("serve on the wiped trail: %v; want it to say %q", s.err, audit.WipedTrailFound)
				}
			}
			out, err := runCLI("audit", "verify", "--data-dir", data)
			switch {
			case c.want == "" && (err != nil || !strings.Contains(out, "OK:")):
				t.Errorf("audit verify: %v\n%s; want OK", err, out)
			case c.want != "" && (err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, c.want)):
				t.Errorf("audit verify: %v\n%s; want FAILED saying %q", err, out, c.want)
			}
		})
	}
}

// The CLI's refusal on a trail nothing can be chained to names what the
// store found, the record after the head among it, as serve's does: the
// terminal is the operator's, who needs the record to mend the trail (r128
// D2: `challenge new` and `certs revoke` gave the message alone).
func TestCLIRefusalNamesTheTamperedRecord(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--challenge", "test", "--data-dir", data}
	if err := serveInProcess(t, nil, args...).stop(); err != nil {
		t.Fatalf("first start: %v", err)
	}
	path := filepath.Join(data, "scepter.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var serial string
	var newest int
	if err := db.QueryRow(`SELECT serial_hex FROM certificates LIMIT 1`).Scan(&serial); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT MAX(id) FROM audit_events`).Scan(&newest); err != nil {
		t.Fatal(err)
	}
	// As r125 and r128 did: the newest record renumbered past the head.
	tamperSQLite(t, path, `UPDATE audit_events SET id = id + 3 WHERE id = (SELECT MAX(id) FROM audit_events)`)
	want := fmt.Sprintf("audit trail: record %d comes after the head, record %d: %s", newest+3, newest, store.AuditTamperedMessage)
	for _, cmd := range [][]string{
		{"challenge", "new"},
		{"certs", "revoke", serial},
	} {
		out, err := runCLI(append(cmd, "--data-dir", data)...)
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v\n%s\nwant %q", strings.Join(cmd, " "), err, out, want)
		}
	}
	// Its head removed as well: the finding says so.
	tamperSQLite(t, path, `DELETE FROM audit_head`)
	want = "audit trail: the trail has records but no head: " + store.AuditTamperedMessage
	if out, err := runCLI("challenge", "new", "--data-dir", data); err == nil || err.Error() != want {
		t.Errorf("challenge new, head removed: %v\n%s\nwant %q", err, out, want)
	}
}
