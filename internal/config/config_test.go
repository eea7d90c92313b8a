package config

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func newSet() (*flag.FlagSet, *string, *string, *bool) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("config", "", "")
	listen := fs.String("listen", "127.0.0.1:8080", "")
	dir := fs.String("data-dir", "./d", "")
	des := fs.Bool("allow-insecure-des", false, "")
	return fs, listen, dir, des
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(file, []byte("listen = \"file:1\"\ndata_dir = \"/from/file\"\nallow_insecure_des = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantListen string
		wantDir    string
		wantDES    bool
	}{
		{"defaults", nil, nil, "127.0.0.1:8080", "./d", false},
		{"file", []string{"--config", file}, nil, "file:1", "/from/file", true},
		{"config from env", nil, map[string]string{"SCEPTER_CONFIG": file}, "file:1", "/from/file", true},
		{"env beats file", []string{"--config", file}, map[string]string{"SCEPTER_LISTEN": "env:2"}, "env:2", "/from/file", true},
		{"flag beats env", []string{"--config", file, "--listen", "flag:3"}, map[string]string{"SCEPTER_LISTEN": "env:2"}, "flag:3", "/from/file", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, listen, dir, des := newSet()
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if err := Parse(fs, tt.args, lookup, nil, nil); err != nil {
				t.Fatal(err)
			}
			if *listen != tt.wantListen || *dir != tt.wantDir || *des != tt.wantDES {
				t.Errorf("got listen=%q dir=%q des=%v", *listen, *dir, *des)
			}
		})
	}
}

func TestUnknownKeysAndBadValues(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown key": "listen = \"x\"\nlisten_port = 3\n",
		"bad bool":    "allow_insecure_des = \"maybe\"\n",
		"table":       "[listen]\na = 1\n",
		"bad toml":    "listen = \n",
		// Both would name --allow-insecure-des, one winning by map order.
		"a hyphen twin": "allow_insecure_des = false\nallow-insecure-des = true\n",
		"a hyphen":      "allow-insecure-des = true\n",
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".toml")
			os.WriteFile(file, []byte(content), 0o600)
			fs, _, _, _ := newSet()
			if err := Parse(fs, []string{"--config", file}, func(string) (string, bool) { return "", false }, nil, nil); err == nil {
				t.Fatal("expected an error")
			}
		})
	}
	fs, _, _, _ := newSet()
	err := Parse(fs, nil, func(k string) (string, bool) { return "yes please", k == "SCEPTER_ALLOW_INSECURE_DES" }, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "SCEPTER_ALLOW_INSECURE_DES") {
		t.Fatalf("bad env value: err = %v", err)
	}
}

// A bad duration, number or boolean was "parse error" and nothing more,
// wherever it came from; it now says what the flag takes. The help still
// names each flag's type, and a boolean flag still needs no value.
func TestBadValuesSayWhatTheFlagTakes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{"duration in days, flag", []string{"--skew", "30d"}, nil, "", `invalid value "30d" for flag -skew: parse error; want a duration such as 90s, 15m or 24h (hours are the largest unit: 30 days is 720h)`},
		{"duration, environment", nil, map[string]string{"SCEPTER_SKEW": "3600"}, "", `SCEPTER_SKEW="3600": parse error; want a duration`},
		{"duration, file", nil, nil, "skew = \"7d\"\n", `.toml: skew="7d": parse error; want a duration`},
		{"boolean, flag", []string{"--allow-insecure-des=yes"}, nil, "", `invalid boolean value "yes" for -allow-insecure-des: parse error; want true or false`},
		{"boolean, file", nil, nil, "allow_insecure_des = \"yes\"\n", `allow_insecure_des must be true or false (no quotes), not the string "yes"`},
		// A TOML value of another type than the flag's is refused, not
		// taken as its text: 1 would turn single DES on.
		{"boolean as a number, file", nil, nil, "allow_insecure_des = 1\n", `allow_insecure_des must be true or false (no quotes), not an integer`},
		{"boolean as a string, file", nil, nil, "allow_insecure_des = \"true\"\n", `must be true or false (no quotes), not the string "true"`},
		{"whole number as a string, file", nil, nil, "conns = \"20\"\n", `conns must be a whole number (no quotes), not the string "20"`},
		{"whole number as a float, file", nil, nil, "conns = 2.5\n", `conns must be a whole number (no quotes), not a float`},
		{"number as a boolean, file", nil, nil, "rate = true\n", `rate must be a number (no quotes), not a boolean`},
		{"duration as a number, file", nil, nil, "skew = 30\n", `skew must be a string, in quotes, not an integer`},
		{"text as a boolean, file", nil, nil, "listen = true\n", `listen must be a string, in quotes, not a boolean`},
		{"text as a number, file", nil, nil, "listen = 29571\n", `listen must be a string, in quotes, not an integer`},
		// A TOML date or time is named as the file spells it, not by the
		// decoder's Go type, time.Time (r86 D6).
		{"text as a date, file", nil, nil, "data_dir = 1979-05-27\n", `data_dir must be a string, in quotes, not a date`},
		{"text as a date and time, file", nil, nil, "listen = 1979-05-27T07:32:00Z\n", `listen must be a string, in quotes, not a date and time`},
		{"text as a local date and time, file", nil, nil, "listen = 1979-05-27T07:32:00\n", `listen must be a string, in quotes, not a date and time`},
		{"duration as a time of day, file", nil, nil, "skew = 07:32:00\n", `skew must be a string, in quotes, not a time of day`},
		{"whole number, environment", nil, map[string]string{"SCEPTER_CONNS": "lots"}, "", `SCEPTER_CONNS="lots": parse error; want a whole number`},
		{"number, flag", []string{"--rate", "fast"}, nil, "", `parse error; want a number`},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, _, _, _ := newSet()
			fs.Duration("skew", 0, "")
			fs.Int("conns", 1, "")
			fs.Float64("rate", 1, "")
			fs.SetOutput(&strings.Builder{})
			args := tc.args
			if tc.file != "" {
				path := filepath.Join(dir, strings.Repeat("c", i+1)+".toml")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			err := Parse(fs, args, lookup, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}

	fs, _, _, des := newSet()
	skew := fs.Duration("skew", 0, "`how` far")
	fs.Int("conns", 1, "connections")
	fs.Duration("wait", time.Second, "waiting")
	var help strings.Builder
	fs.SetOutput(&help)
	if err := Parse(fs, []string{"-h"}, func(string) (string, bool) { return "", false }, nil, nil); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-skew how", "-conns int", "(default 1)", "-wait duration", "(default 1s)", "-allow-insecure-des\n"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, help.String())
		}
	}
	fs, _, _, des = newSet()
	skew = fs.Duration("skew", 0, "")
	if err := Parse(fs, []string{"--allow-insecure-des", "--skew", "90m"}, func(string) (string, bool) { return "", false }, nil, nil); err != nil || !*des || *skew != 90*time.Minute {
		t.Errorf("Parse: %v, des %v, skew %v", err, *des, *skew)
	}
}

// onlyOnCommandLine is a switch that config.CommandLineOnly keeps off the
// environment and the file.
type onlyOnCommandLine struct{ on bool }

func (o *onlyOnCommandLine) Set(v string) error      { o.on = v == "true"; return nil }
func (o *onlyOnCommandLine) String() string          { return fmt.Sprint(o != nil && o.on) }
func (o *onlyOnCommandLine) Get() any                { return o.on }
func (o *onlyOnCommandLine) IsBoolFlag() bool        { return true }
func (o *onlyOnCommandLine) CommandLineOnly() string { return "it acknowledges one event" }

// A command-line-only flag given in the environment or the file is
// refused, naming where and why; on the command line it is taken.
func TestCommandLineOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte("once = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // "" taken
	}{
		{"flag", []string{"--once"}, nil, ""},
		{"flag beside the file", []string{"--once", "--config", path}, nil, ""},
		{"environment", nil, map[string]string{"SCEPTER_ONCE": "true"}, "SCEPTER_ONCE: --once is taken only on the command line: it acknowledges one event"},
		{"file", []string{"--config", path}, nil, "config " + path + ": once: --once is taken only on the command line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.String("config", "", "")
			once := &onlyOnCommandLine{}
			fs.Var(once, "once", "")
			err := Parse(fs, tc.args, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, nil, nil)
			if tc.want == "" {
				if err != nil || !once.on {
					t.Errorf("err %v, on %v; want it taken", err, once.on)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || once.on {
				t.Errorf("err %v, on %v; want %q and not taken", err, once.on, tc.want)
			}
		})
	}
}

// names is a comma-separated list flag, as --est-server-name is.
type names []string

func (n *names) String() string { return strings.Join(*n, ",") }
func (n *names) Set(v string) error {
	*n = append(*n, strings.Split(v, ",")...)
	return nil
}
func (n *names) IsListFlag() bool { return true }

// A TOML array is taken for a list flag alone: for any other it was
// joined with commas and used, data_dir = ["/a", "/b"] naming one
// directory "/a,/b" (r86 D3).
func TestListsOnlyForListFlags(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct {
		name, file string
		want       string   // the error, "" for none
		names      []string // the list flag's value when taken
	}{
		{"a list for a path", `data_dir = ["/tmp/dA", "/tmp/dB"]`, `data_dir must be a string, in quotes, not a list`, nil},
		{"a list of one for a path", `data_dir = ["/tmp/dA"]`, `data_dir must be a string, in quotes, not a list`, nil},
		{"an empty list for a path", `data_dir = []`, `data_dir must be a string, in quotes, not a list`, nil},
		{"a list for an address", `listen = ["http://a", "http://b"]`, `listen must be a string, in quotes, not a list`, nil},
		{"a list for a duration", `skew = ["1h"]`, `skew must be a string, in quotes, not a list`, nil},
		{"a list for a switch", `allow_insecure_des = [true]`, `allow_insecure_des must be true or false (no quotes), not a list`, nil},
		{"a number for a list", `names = 3`, `names must be a string, in quotes, or a list of strings (["…", "…"]), not an integer`, nil},
		{"a list for a list", `names = ["a.example", "10.0.0.5"]`, "", []string{"a.example", "10.0.0.5"}},
		{"a string for a list", `names = "a.example,10.0.0.5"`, "", []string{"a.example", "10.0.0.5"}},
		{"a list item with a comma", `names = ["a,b"]`, `names must be a list of strings without commas`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _, dataDir, _ := newSet()
			fs.Duration("skew", 0, "")
			var n names
			fs.Var(&n, "names", "")
			path := filepath.Join(dir, fmt.Sprintf("c%d.toml", i))
			if err := os.WriteFile(path, []byte(tc.file+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := Parse(fs, []string{"--config", path}, func(string) (string, bool) { return "", false }, nil, nil)
			if tc.want == "" {
				if err != nil || !slices.Equal(n, tc.names) {
					t.Errorf("err %v, names %q; want %q", err, n, tc.names)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if *dataDir != "./d" {
				t.Errorf("data_dir = %q, want the default kept", *dataDir)
			}
		})
	}
}

// The flags' usage, printed while their values are wrapped to explain parse
// errors (the agent's, parsed without Parse), shows no panic and the same
// text as the flags' own values give: flag.PrintDefaults calls String on a
// zero value of each flag's type, and the zero boolHint panicked (r100 D5).
func TestUsageWhileWrapped(t *testing.T) {
	newSet := func() *flag.FlagSet {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.Bool("once", false, "run once")
		fs.Bool("on", true, "on by default")
		fs.Duration("every", time.Minute, "how often")
		fs.Duration("none", 0, "no default")
		fs.Int("count", 3, "how many")
		fs.Float64("rate", 0, "how fast")
		fs.String("name", "", "a name")
		return fs
	}
	var want bytes.Buffer
	own := newSet()
	own.SetOutput(&want)
	own.PrintDefaults()
	for _, tc := range []struct {
		name  string
		print func(fs *flag.FlagSet)
	}{
		// PrintDefaults itself, the values wrapped: what any code
		// printing the flags' defaults mid-parse would get.
		{"PrintDefaults", func(fs *flag.FlagSet) { defer wrapValues(fs)(); fs.PrintDefaults() }},
		// The usage a refused flag prints, as the agent parses.
		{"a refused flag", func(fs *flag.FlagSet) { defer ExplainParseErrors(fs)(); fs.Parse([]string{"--bogus"}) }},
		{"-h", func(fs *flag.FlagSet) { defer ExplainParseErrors(fs)(); fs.Parse([]string{"-h"}) }},
	} {
		var got bytes.Buffer
		fs := newSet()
		fs.SetOutput(&got)
		tc.print(fs)
		if strings.Contains(got.String(), "panic") {
			t.Errorf("%s: the usage shows a panic:\n%s", tc.name, got.String())
		}
		if tc.name != "PrintDefaults" && !strings.Contains(got.String(), want.String()) {
			t.Errorf("%s: the usage lists\n%s\nwant\n%s", tc.name, got.String(), want.String())
		}
	}
}
