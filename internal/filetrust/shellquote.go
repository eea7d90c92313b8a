package filetrust

import "strings"

// ShellQuote writes s as one word of a POSIX shell command line, for the
// commands scepter suggests (chmod, chown, and the CLI's next steps):
// pasted, a path named "sp ace/d" must not become two arguments. A word of
// safe characters only is written as it is, anything else in single
// quotes, closed before a single quote within, which is escaped with a
// backslash, and opened again after it.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, shellSafe) == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellSafe are the characters no POSIX shell gives a meaning to in an
// argument ('~' is left out: a shell expands it at a word's start).
const shellSafe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=:,./@%"
