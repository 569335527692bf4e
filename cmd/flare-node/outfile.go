package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/flarechain/flare-node/config"
	"github.com/flarechain/flare-node/internal/storagefault"
)

// checkOutputFile checks, before anything is written, that the node can
// create or replace the file at path (flag names the option in messages):
// its directory exists and is writable, and the file, when it exists, is a
// regular file the node may write. The error is an operator error.
func checkOutputFile(path, flag string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return usageError(fmt.Errorf("%s %s: directory %s does not exist; create it first", flag, path, dir))
	case err != nil:
		return usageError(fmt.Errorf("%s %s: %w", flag, path, err))
	case !fi.IsDir():
		return usageError(fmt.Errorf("%s %s: %s is not a directory", flag, path, dir))
	}
	if err := storagefault.CheckWritable(dir); err != nil {
		return usageError(fmt.Errorf("%s %s: cannot create files in %s: %w", flag, path, dir, err))
	}
	if fi, err := os.Lstat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return usageError(fmt.Errorf("%s %s exists and is not a regular file", flag, path))
		}
		if err := storagefault.CheckWritableFile(path); err != nil {
			return usageError(fmt.Errorf("%s %s: %w", flag, path, err))
		}
	}
	return nil
}

// logOutput is where the log goes: standard output, or the rotated file of
// cfg.File (lumberjack: rotated at MaxSizeMiB into
// <name>-<UTC timestamp><ext> beside it, at most MaxBackups rotated files
// kept, none older than MaxAgeDays). The returned closer closes the file.
func logOutput(cfg config.LogConfig, stdout io.Writer) (io.Writer, io.Closer) {
	if cfg.File == "" {
		return stdout, io.NopCloser(nil)
	}
	lj := &lumberjack.Logger{
		Filename:   cfg.File,
		MaxSize:    cfg.MaxSizeMiB,
		MaxBackups: cfg.MaxBackups,
		MaxAge:     cfg.MaxAgeDays,
	}
	return lj, lj
}

// pidFile is the --pid-file of a running node.
type pidFile struct {
	path string
	pid  int
}

// writePIDFile writes the process id to path (a temporary file renamed into
// place, so that a reader never sees a partial number).
func writePIDFile(path string) (*pidFile, error) {
	pid := os.Getpid()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	return &pidFile{path: path, pid: pid}, nil
}

// Remove deletes the pid file if it still holds this process's id (a node
// started later on another base path may have replaced it).
func (p *pidFile) Remove() {
	if p == nil {
		return
	}
	data, err := os.ReadFile(p.path)
	if err != nil || !bytes.Equal(bytes.TrimSpace(data), []byte(strconv.Itoa(p.pid))) {
		return
	}
	_ = os.Remove(p.path)
}
