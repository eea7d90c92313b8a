// Package config resolves settings from, in rising precedence: defaults, a
// TOML config file, SCEPTER_* environment variables, and command-line flags.
// Every setting is a flag; the config file and the environment use the same
// names (flag "ca-key-type" is key "ca_key_type" and SCEPTER_CA_KEY_TYPE), so
// there is one list of settings to document and test. Unknown keys are errors.
package config

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/scepter/scepter/internal/filetrust"
)

// CommandLineOnly is a flag value taken only from the command line, never
// from the environment or the config file: one that acknowledges a single
// event, and left in a unit file or a config would go on acknowledging
// later ones unseen. CommandLineOnly says why, for the refusal.
type CommandLineOnly interface {
	flag.Value
	CommandLineOnly() string
}

// ListFlag is a flag value that takes several values, comma-separated
// (--est-server-name a,b): in the config file it may be a TOML array,
// whose items are joined with commas. Any other flag takes one value, and
// an array for it is refused: joined, data_dir = ["/a", "/b"] named one
// directory "/a,/b".
type ListFlag interface {
	flag.Value
	IsListFlag() bool
}

// EnvPrefix is the prefix of every environment variable we read.
const EnvPrefix = "SCEPTER_"

// EnvName returns the environment variable for a flag name.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// KeyName returns the config-file key for a flag name.
func KeyName(flagName string) string { return strings.ReplaceAll(flagName, "-", "_") }

// Sections are config-file tables that are not flags (e.g. profiles); each
// is handed to its decoder. A section name not listed is an unknown key.
type Sections map[string]func(toml.Primitive, toml.MetaData) error

// Parse parses args into fs, then fills every flag not given on the command
// line from the environment, then from the config file named by the flag
// "config" (if fs has it and it is set). lookupEnv is os.LookupEnv in
// production and a map in tests.
//
// known, when set, names config-file keys that belong to other commands
// sharing the file (serve's settings read by `certs list`): they are
// accepted and ignored rather than reported as unknown.
func Parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool), sections Sections, known func(flagName string) bool) error {
	_, err := ParseOrigins(fs, args, lookupEnv, sections, known)
	return err
}

// Origin is where a setting's value was taken from, when not from the
// command line: an environment variable, or a key of a config file.
type Origin struct {
	Env       string // SCEPTER_NOTIFY_INTERVAL
	File, Key string // scepter.toml, notify_interval
}

// Origins are the origins of the settings not given on the command line,
// by flag name.
type Origins map[string]Origin

// Refusal rewrites msg, a refusal of a setting that begins with its flag
// ("--notify-interval must be positive"), to name the setting as it was
// given when that was not on the command line: by its variable
// ("SCEPTER_NOTIFY_INTERVAL must be positive") or by its key and file
// ("config scepter.toml: notify_interval must be positive"), as the
// errors Parse itself returns do. Any other message is returned as it is;
// so is the rest of msg, whose --flags may be advice ("give it with
// --data-dir").
func (o Origins) Refusal(msg string) string {
	rest, ok := strings.CutPrefix(msg, "--")
	if !ok {
		return msg
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') })
	if end < 0 {
		end = len(rest)
	}
	name, after := rest[:end], rest[end:]
	if after != "" && !strings.ContainsRune(" :", rune(after[0])) {
		return msg // not a flag's whole name: "--x=…", "--x," are left as they are
	}
	switch org, found := o[name]; {
	case !found:
		return msg
	case org.Env != "":
		return org.Env + after
	case org.Key != "":
		return "config " + org.File + ": " + org.Key + after
	}
	return msg
}

// Name is the setting of flag name as it was given, for a message that
// names it after another setting (Refusal names the first): its variable
// ("SCEPTER_CHALLENGE_FILE"), its key and file ("challenge_file in config
// scepter.toml"), or its flag ("--challenge-file") when it came from the
// command line or is not known here.
func (o Origins) Name(name string) string {
	switch org := o[name]; {
	case org.Env != "":
		return org.Env
	case org.Key != "":
		return org.Key + " in config " + org.File
	}
	return "--" + name
}

// NameAfter is Name for a setting named after first in one message that
// Refusal words ("config scepter.toml: challenge and challenge_file both
// …"): a key of the config file first came from is named by its key
// alone, since Refusal names that file once, before first.
func (o Origins) NameAfter(first, name string) string {
	lead, org := o[first], o[name]
	if lead.Env == "" && lead.Key != "" && org.Env == "" && org.Key != "" && org.File == lead.File {
		return org.Key
	}
	return o.Name(name)
}

// ParseOrigins is Parse, and says where each setting it took from the
// environment or the config file came from.
func ParseOrigins(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool), sections Sections, known func(flagName string) bool) (Origins, error) {
	defer explainParseErrors(fs)()
	origins := Origins{}
	if err := fs.Parse(args); err != nil {
		return origins, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// The config file path itself may come from the environment.
	if cf := fs.Lookup("config"); cf != nil && !set["config"] {
		if v, ok := lookupEnv(EnvName("config")); ok {
			if err := cf.Value.Set(v); err != nil {
				return origins, fmt.Errorf("%s: %w", EnvName("config"), err)
			}
			origins["config"] = Origin{Env: EnvName("config")}
		}
	}
	fileValues := map[string]string{}
	configPath := ""
	if cf := fs.Lookup("config"); cf != nil && cf.Value.String() != "" {
		configPath = cf.Value.String()
		var err error
		fileValues, err = readFile(configPath, fs, sections, known)
		if err != nil {
			return origins, err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		if once, ok := unhinted(f.Value).(CommandLineOnly); ok {
			if _, inEnv := lookupEnv(EnvName(f.Name)); inEnv {
				errs = append(errs, fmt.Errorf("%s: --%s is taken only on the command line: %s", EnvName(f.Name), f.Name, once.CommandLineOnly()))
			}
			if _, inFile := fileValues[f.Name]; inFile {
				errs = append(errs, fmt.Errorf("config %s: %s: --%s is taken only on the command line: %s", configPath, KeyName(f.Name), f.Name, once.CommandLineOnly()))
			}
			return
		}
		if v, ok := lookupEnv(EnvName(f.Name)); ok {
			origins[f.Name] = Origin{Env: EnvName(f.Name)}
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", EnvName(f.Name), v, err))
			}
			return
		}
		if v, ok := fileValues[f.Name]; ok {
			origins[f.Name] = Origin{File: configPath, Key: KeyName(f.Name)}
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("config %s: %s=%q: %w", configPath, KeyName(f.Name), v, err))
			}
		}
	})
	return origins, errors.Join(errs...)
}

func readFile(path string, fs *flag.FlagSet, sections Sections, known func(string) bool) (map[string]string, error) {
	data, err := filetrust.ReadRegular(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var raw map[string]toml.Primitive
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	out := map[string]string{}
	var unknown []string
	for key, prim := range raw {
		if dec, ok := sections[key]; ok {
			// A section is a table of tables ([profiles.NAME]). Under its
			// name anything else (profiles = "vpn", [[profiles]]) decodes
			// to no entries at all, and would be dropped without a word.
			if t := md.Type(key); t != "" && t != "Hash" {
				return nil, fmt.Errorf("config %s: %s must be tables, [%s.NAME], not %s", path, key, key, primitiveName(md, prim))
			}
			if err := dec(prim, md); err != nil {
				return nil, fmt.Errorf("config %s: [%s]: %w", path, key, err)
			}
			continue
		}
		name := strings.ReplaceAll(key, "_", "-")
		if strings.Contains(key, "-") {
			// est-listen and est_listen would both name --est-listen, one
			// winning by map order: keys are written with underscores.
			unknown = append(unknown, key+" (write it "+KeyName(key)+")")
			continue
		}
		if fs.Lookup(name) == nil || name == "config" {
			if known == nil || !known(name) || name == "config" {
				unknown = append(unknown, key)
			}
			continue
		}
		var v any
		if err := md.PrimitiveDecode(prim, &v); err != nil {
			return nil, fmt.Errorf("config %s: %s: %w", path, key, err)
		}
		if want, ok := tomlTypeFits(fs.Lookup(name), v); !ok {
			return nil, fmt.Errorf("config %s: %s must be %s, not %s", path, key, want, tomlValueName(v))
		}
		switch v := v.(type) {
		case string:
			out[name] = v
		case bool, int64, float64:
			out[name] = fmt.Sprint(v)
		case []any:
			// A list flag (--est-server-name a,b) as a TOML array.
			var items []string
			for _, item := range v {
				s, ok := item.(string)
				if !ok || strings.Contains(s, ",") {
					return nil, fmt.Errorf("config %s: %s must be a list of strings without commas", path, key)
				}
				items = append(items, s)
			}
			out[name] = strings.Join(items, ",")
		default:
			return nil, fmt.Errorf("config %s: %s must be a string, number, boolean or list of strings", path, key)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(unknown, ", "))
	}
	return out, nil
}

// What a setting takes, in the config file's words: the top-level keys'
// (tomlTypeFits) and a profile's (profileValueFits) alike.
const (
	wantBool   = "true or false (no quotes)"
	wantWhole  = "a whole number (no quotes)"
	wantString = "a string, in quotes"
	wantList   = `a list of strings (["…", "…"])`
)

// tomlTypeFits reports whether v, a TOML value, is of the type f takes: a
// boolean for a switch, an integer for a whole-number flag, a number for
// another number, a string (or, for a ListFlag, an array) for the rest,
// durations included. Anything would otherwise go through as its text:
// allow_insecure_des = 1 turned single DES on, challenge_file = true named
// a file "true". want says what f takes when v does not fit.
func tomlTypeFits(f *flag.Flag, v any) (want string, ok bool) {
	if l, isList := unhinted(f.Value).(ListFlag); isList && l.IsListFlag() {
		switch v.(type) {
		case string, []any:
			return "", true
		}
		return wantString + ", or " + wantList, false
	}
	if b, isBool := f.Value.(interface{ IsBoolFlag() bool }); isBool && b.IsBoolFlag() {
		_, ok = v.(bool)
		return wantBool, ok
	}
	if g, isGetter := f.Value.(flag.Getter); isGetter {
		switch g.Get().(type) {
		case int, int64, uint, uint64:
			_, ok = v.(int64)
			return wantWhole, ok
		case float64:
			switch v.(type) {
			case int64, float64:
				return "", true
			}
			return "a number (no quotes)", false
		}
	}
	_, ok = v.(string)
	return wantString, ok
}

// tomlValueName names the TOML type of a decoded value.
func tomlValueName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %.40q", v)
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case time.Time:
		return TOMLTimeName(v)
	}
	return fmt.Sprintf("a %T", v)
}

// TOMLTimeName names a TOML date or time as its writer knows it: the
// decoder gives all four kinds as a time.Time, the local ones (1979-05-27,
// 07:32:00, 1979-05-27T07:32:00) in zones of its own naming them.
func TOMLTimeName(t time.Time) string {
	switch t.Location().String() {
	case "date-local":
		return "a date"
	case "time-local":
		return "a time of day"
	}
	return "a date and time"
}

// primitiveName names the TOML value prim holds, as tomlValueName does
// (toml.MetaData.Type calls a date, a time and a date and time alike
// "Datetime").
func primitiveName(md toml.MetaData, prim toml.Primitive) string {
	var v any
	if err := md.PrimitiveDecode(prim, &v); err != nil {
		return "a value the decoder cannot read"
	}
	return tomlValueName(v)
}

// explainParseErrors makes the flag package's bare "parse error" for a bad
// duration, number or boolean (on the command line, in the environment or
// in the config file) say what the flag takes: "30d" for a duration flag,
// which takes no days, is the usual one. restore puts the flags' own
// values (and fs.Usage) back; it may be called more than once. The usage
// puts them back first: the help names each flag's type by its value's
// type, the flag's own and not the wrapper's.
func explainParseErrors(fs *flag.FlagSet) (restore func()) {
	restoreValues := wrapValues(fs)
	usage := fs.Usage
	fs.Usage = func() {
		restoreValues()
		if usage != nil {
			usage()
			return
		}
		if fs.Name() == "" {
			fmt.Fprintf(fs.Output(), "Usage:\n")
		} else {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
		}
		fs.PrintDefaults()
	}
	return func() {
		restoreValues()
		fs.Usage = usage
	}
}

// wrapValues wraps the values of fs's duration, number and boolean flags
// in hinted; restore puts the flags' own values back.
func wrapValues(fs *flag.FlagSet) (restore func()) {
	orig := map[*flag.Flag]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		orig[f] = f.Value
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		switch g.Get().(type) {
		case time.Duration:
			f.Value = hinted{f.Value, "a duration such as 90s, 15m or 24h (hours are the largest unit: 30 days is 720h)"}
		case bool:
			f.Value = boolHint{hinted{f.Value, "true or false"}}
		case int, int64, uint, uint64:
			f.Value = hinted{f.Value, "a whole number"}
		case float64:
			f.Value = hinted{f.Value, "a number"}
		}
	})
	return func() {
		for f, v := range orig {
			f.Value = v
		}
	}
}

// ExplainParseErrors is explainParseErrors for a flag set Parse does not
// parse (the agent's, whose --config is its own file): its errors, on the
// command line and from the environment, say what a flag takes as
// serve's do.
func ExplainParseErrors(fs *flag.FlagSet) (restore func()) { return explainParseErrors(fs) }

// hinted is a flag value whose Set errors say what it takes.
type hinted struct {
	flag.Value
	want string
}

func (h hinted) Set(s string) error {
	if err := h.Value.Set(s); err != nil {
		return fmt.Errorf("%w; want %s", err, h.want)
	}
	return nil
}

func (h hinted) Get() any { return h.Value.(flag.Getter).Get() }

// String works on the zero hinted too, which flag.PrintDefaults makes to
// tell a default worth printing.
func (h hinted) String() string {
	if h.Value == nil {
		return ""
	}
	return h.Value.String()
}

// unhinted is the flag's own value under explainParseErrors' wrapper.
func unhinted(v flag.Value) flag.Value {
	switch w := v.(type) {
	case hinted:
		return w.Value
	case boolHint:
		return w.Value
	}
	return v
}

type boolHint struct{ hinted }

// String of the zero boolHint, which flag.PrintDefaults makes, is a
// boolean's zero: a false default then goes unprinted, as for a bool flag.
func (b boolHint) String() string {
	if b.Value == nil {
		return "false"
	}
	return b.Value.String()
}

// IsBoolFlag lets a boolean flag be given without a value (--json).
func (boolHint) IsBoolFlag() bool { return true }
