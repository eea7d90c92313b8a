package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scepter/scepter/internal/ndes"
	"github.com/scepter/scepter/internal/scep/scepserver"
)

// r78 D7: the top-level help names every subcommand of each command group
// in that group's line; it left out 'ca renew-ra' and 'ca root crl', two
// commands README tells an operator to run. A ca subcommand is named
// whole ("ca root crl").
func TestTopLevelHelpNamesEverySubcommand(t *testing.T) {
	e, out, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"--help"}); exitCode(err) != 0 {
		t.Fatalf("--help: %v", err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(l, "  ") {
			lines[f[0]] = l
		}
	}
	for _, words := range flagCommands() {
		if len(words) < 2 {
			continue
		}
		line, ok := lines[words[0]]
		if !ok {
			t.Errorf("the help has no line for %s:\n%s", words[0], out)
			continue
		}
		said := map[string]bool{}
		for _, w := range strings.FieldsFunc(line, func(r rune) bool { return !('a' <= r && r <= 'z' || r == '-') }) {
			said[w] = true
		}
		for _, w := range words[1:] {
			if !said[w] {
				t.Errorf("%q: the help's line does not name %q:\n%s", strings.Join(words, " "), w, line)
			}
		}
		if words[0] == "ca" && !strings.Contains(line, strings.Join(words, " ")) {
			t.Errorf("the help's line does not name %q:\n%s", strings.Join(words, " "), line)
		}
	}
}

// r78 D7: serve -h gives the bounds the server enforces, and says what
// the behaviour adds to a default.
func TestServeHelpSaysWhatTheServerDoes(t *testing.T) {
	e, out, _ := testEnv(nil)
	if err := run(context.Background(), e, []string{"serve", "-h"}); exitCode(err) != 0 {
		t.Fatalf("serve -h: %v", err)
	}
	flags := map[string]string{}
	for _, block := range strings.Split(out.String(), "\n  -")[1:] {
		name, _, _ := strings.Cut(block, " ")
		name, _, _ = strings.Cut(name, "\n")
		flags[name] = strings.Join(strings.Fields(block), " ")
	}
	for _, tt := range []struct{ flag, want string }{
		{"max-clock-skew", "at most " + shortDuration(scepserver.MaxClockSkewLimit)},
		{"ndes-ttl", "from " + shortDuration(ndes.MinTTL) + " to " + shortDuration(ndes.MaxTTL)},
		{"est-server-name", "the default also takes the host of --est-listen"},
		{"max-conns", "idle between requests for 250ms"},
		{"log-level", "debug, info, warn, error"},
	} {
		if help, ok := flags[tt.flag]; !ok || !strings.Contains(help, tt.want) {
			t.Errorf("--%s: help %q does not say %q", tt.flag, help, tt.want)
		}
	}
}

// shortDuration writes d as README does: 720h, 1m.
func shortDuration(d time.Duration) string {
	s := d.String()
	for _, zero := range []string{"0s", "0m"} {
		if strings.HasSuffix(s, zero) && len(s) > len(zero) {
			s = strings.TrimSuffix(s, zero)
		}
	}
	return s
}

// r78 D7: a --log-level serve does not know is refused (exit 2) with what
// to give, as agent --log-level is, from the flag or its variable; before,
// slog's "level string \"verbose\": unknown name".
func TestServeLogLevelRefusal(t *testing.T) {
	for _, tt := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"flag", nil, []string{"--log-level", "verbose"}, "--log-level"},
		{"variable", map[string]string{"SCEPTER_LOG_LEVEL": "verbose"}, nil, "SCEPTER_LOG_LEVEL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--listen", "127.0.0.1:0", "--est-listen", "off", "--data-dir", t.TempDir()}, tt.args...)
			_, stderr, err := serveOnceWith(t, tt.vars, args...)
			want := tt.want + ` "verbose": want debug, info, warn or error`
			if exitCode(err) != 2 || err.Error() != want {
				t.Errorf("err = %v (exit %d), want exit 2, %q\n%s", err, exitCode(err), want, stderr)
			}
		})
	}
}

// r78 D7: a --public-url host that is not ASCII is refused with the advice
// to write it in its xn-- form once, not twice.
func TestPublicURLIDNAdviceOnce(t *testing.T) {
	_, err := parsePublicURL("http://ça.example/")
	if exitCode(err) != 2 || strings.Count(err.Error(), "xn--") != 1 {
		t.Errorf("err = %v (exit %d), want exit 2 and the xn-- advice once", err, exitCode(err))
	}
}

// Every command's usage, asked for (-h) or after a refused flag, lists its
// flags without a Go panic message: agent's ended with "panic calling
// String method on zero config.boolHint for flag once" (r100 D5), the flag
// package's look at a zero value of the wrapper that names what a flag
// takes.
func TestUsageHasNoPanic(t *testing.T) {
	for _, words := range flagCommands() {
		for _, last := range []string{"-h", "--bogus"} {
			args := append(append([]string{}, words...), last)
			e, out, errb := testEnv(nil)
			err := run(context.Background(), e, args)
			if want := map[string]int{"-h": 0, "--bogus": 2}[last]; exitCode(err) != want {
				t.Errorf("%v: exit %d (%v), want %d", args, exitCode(err), err, want)
			}
			usage := out.String() + errb.String()
			if err != nil {
				usage += err.Error()
			}
			if !strings.Contains(strings.ToLower(usage), "usage") {
				t.Errorf("%v: no usage shown:\n%s", args, usage)
			}
			if strings.Contains(usage, "panic") {
				t.Errorf("%v: the usage shows a panic:\n%s", args, usage)
			}
		}
	}
}
