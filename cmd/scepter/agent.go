package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/scepter/scepter/internal/agent"
	"github.com/scepter/scepter/internal/config"
	"github.com/scepter/scepter/internal/pki"
)

const agentUsage = `usage: scepter agent --config agent.toml [--once] [--log-level info] [--log-format text|json]
       scepter agent status --config agent.toml`

// cmdAgent is the device-side renewal agent: long-running, or once (cron,
// systemd timers); `agent status` shows what it looks after.
func cmdAgent(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "status" {
		return agentStatus(e, args[1:])
	}
	fs := newFlagSet(e, "agent", "agent --config agent.toml [--once] [flags]  |  agent status --config agent.toml")
	var configFile, logLevel, logFormat string
	var once bool
	fs.StringVar(&configFile, "config", "", "agent configuration: [[certificate]] tables (see examples/agent.toml)")
	fs.BoolVar(&once, "once", false, "renew what is due and exit (for cron and systemd timers): 0 when all is well, 1 when a renewal failed")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	if err := parseAgentFlags(fs, e, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch logFormat {
	case "text":
		h = slog.NewTextHandler(e.stderr, opts)
	case "json":
		h = slog.NewJSONHandler(e.stderr, opts)
	default:
		return usageError{fmt.Sprintf("--log-format %q: want text or json", logFormat)}
	}
	// The flags are checked first: their errors do not depend on the
	// machine the config describes.
	cfg, err := loadAgentConfig(e, configFile)
	if err != nil {
		return err
	}
	a := &agent.Agent{Config: cfg, Clock: pki.SystemClock{}, Log: slog.New(h)}
	if once {
		return a.RunOnce(ctx)
	}
	// A logrotate postrotate's `kill -HUP` must not end it (SIGHUP's
	// default): it keeps no file open to reopen.
	ignoreHangUp(ctx, a.Log, "logs go to stderr, and the agent reads its certificates again at each check; the configuration is read at start, so restart the agent to change it; stop it with SIGTERM")
	return a.Run(ctx)
}

func agentStatus(e env, args []string) error {
	fs := newFlagSet(e, "agent status", "agent status --config agent.toml")
	var configFile string
	fs.StringVar(&configFile, "config", "", "agent configuration")
	if err := parseAgentFlags(fs, e, args); err != nil {
		return err
	}
	cfg, err := loadAgentConfig(e, configFile)
	if err != nil {
		return err
	}
	a := &agent.Agent{Config: cfg, Clock: pki.SystemClock{}}
	st := a.Status()
	// The subjects are the servers' and problems may quote them.
	var out bytes.Buffer
	if err := agent.WriteStatus(&out, st, a.Clock.Now()); err != nil {
		return err
	}
	if _, err := io.WriteString(e.stdout, printableLines(out.String())); err != nil {
		return err
	}
	bad := 0
	for _, s := range st {
		if s.Failing(a.Clock.Now()) {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d certificates have a problem", bad, len(st))
	}
	return nil
}

// loadAgentConfig reads the agent's config file, refusing it, or a
// challenge_file it names, when another user may change it (its
// post_renew commands run as the agent's user), as the other commands
// refuse theirs (checkFileModes).
func loadAgentConfig(e env, path string) (*agent.Config, error) {
	if path == "" {
		return nil, usageError{"--config is required: the agent's TOML file with [[certificate]] tables (see examples/agent.toml)"}
	}
	noSecret := func() string { return "" }
	if err := checkFileMode(e, "--config", path, "it, and with it the commands it runs (post_renew) and where keys go", noSecret); err != nil {
		return nil, err
	}
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	// Before any server is asked: a renewal that could not be installed
	// would be issued for nothing.
	if err := agent.CheckOutputDirs(cfg); err != nil {
		return nil, usageError{fmt.Sprintf("agent config %s: %v", path, err)}
	}
	for _, c := range cfg.Certificates {
		if c.ChallengeFile != "" {
			if err := checkSecretFileMode(e, "challenge_file", c.ChallengeFile); err != nil {
				return nil, err
			}
		}
	}
	// A challenge_file missing or empty is found now, not when the
	// certificate comes due.
	if err := agent.CheckChallengeFiles(cfg); err != nil {
		return nil, usageError{fmt.Sprintf("agent config %s: %v", path, err)}
	}
	return cfg, nil
}

// parseAgentFlags parses the agent's flags and fills the unset ones from
// SCEPTER_<FLAG>. Its --config is the agent's own file (TOML with
// [[certificate]] tables), not a file of flag values as for the other
// commands, so config.Parse does not read it.
func parseAgentFlags(fs *flag.FlagSet, e env, args []string) error {
	if e.probeFlags != nil {
		e.probeFlags(fs)
		return errProbed
	}
	if !overridable[fs.Name()] {
		if err := refuseRepeatedFlags(fs, args); err != nil {
			return err
		}
	}
	// Its parse errors say what a flag takes, as serve's do.
	defer config.ExplainParseErrors(fs)()
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		e.stdout.Write(out.Bytes())
		return err
	}
	writeParseOutput(e, out.Bytes(), err)
	fs.SetOutput(e.stderr)
	if err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments: %s\n%s", strings.Join(fs.Args(), " "), agentUsage)}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := e.lookupEnv(config.EnvName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", config.EnvName(f.Name), v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return usageError{err.Error()}
	}
	return nil
}
