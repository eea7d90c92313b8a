package filetrust

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The path rules below take a path as the kernel does, where the filepath
// package takes it as text: after a symbolic link L, "L/.." is the parent
// of where L leads, which filepath.Clean and filepath.Dir make into L's own
// directory. Checks of which file is meant (the agent's key and certificate
// paths, the CLI's --out beside the data directory) go through them, so
// that a check and the open it guards name one file.

// KernelPath is the absolute, clean path of the file the kernel opens for
// p (relative to baseDir): a ".." goes up from where the symbolic link
// before it leads, not from the link's own directory as filepath.Clean
// takes it, so the part up to the last ".." is resolved. A path without
// ".." is only cleaned, its links kept: links a caller makes are made, and
// named, as the operator spelled them. An error when the part to resolve
// cannot be followed: what the path names cannot be told.
func KernelPath(baseDir, p string) (string, error) {
	if !filepath.IsAbs(p) {
		// Not Join: it would clean a ".." in p by text.
		p = baseDir + string(filepath.Separator) + p
	}
	if !HasDotDot(p) {
		return filepath.Clean(p), nil
	}
	parts := strings.Split(p, string(filepath.Separator))
	last := 0
	for i, part := range parts {
		if part == ".." {
			last = i
		}
	}
	head := strings.Join(parts[:last+1], string(filepath.Separator))
	real, err := filepath.EvalSymlinks(head)
	if err != nil {
		return "", fmt.Errorf("%s cannot be followed (a \"..\" goes up from where the symbolic link before it leads, so the file cannot be told): %w; write the path without \"..\"", head, err)
	}
	return filepath.Join(append([]string{real}, parts[last+1:]...)...), nil
}

// HasDotDot says whether p has a ".." component.
func HasDotDot(p string) bool {
	for _, part := range strings.Split(p, string(filepath.Separator)) {
		if part == ".." {
			return true
		}
	}
	return false
}

// FromRealCwd makes a relative path absolute from the working directory
// as the kernel knows it, links resolved, without cleaning the path:
// os.Getwd gives $PWD, which after "cd LINK" runs through the link, and
// "LINK/../x" is not where the kernel puts "../x".
func FromRealCwd(path string) (string, error) {
	if filepath.IsAbs(path) {
		return path, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if wd, err = filepath.EvalSymlinks(wd); err != nil {
		return "", err
	}
	return wd + string(filepath.Separator) + path, nil
}

// LiteralDir is path's directory as the kernel finds it: path up to its
// last separator, not cleaned. filepath.Dir cleans "L/../ca/root.key" to
// "ca" by text, where the kernel goes up from wherever the link L leads.
func LiteralDir(path string) string {
	i := strings.LastIndexByte(path, filepath.Separator)
	switch {
	case i < 0:
		return "."
	case i == 0:
		return string(filepath.Separator)
	}
	return path[:i]
}
