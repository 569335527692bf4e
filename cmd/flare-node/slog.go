package main

import (
	"context"
	"log/slog"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// routeLibraryLogs sends the slog output of libraries (libp2p's gologshim
// loggers, fx, anything using slog.Default) into log at min level or above,
// so that they share the node's format and never write to stderr, which is
// reserved for the final error line.
// The go-log loggers of the Kademlia DHT (level error unless GOLOG_LOG_LEVEL
// says otherwise) write to the same core.
func routeLibraryLogs(log *zap.Logger, min slog.Level) {
	h := &zapHandler{log: log, min: min}
	gologshim.SetDefaultHandler(h)
	slog.SetDefault(slog.New(h))
	golog.SetPrimaryCore(log.Core())
}

// zapHandler is a slog.Handler writing to a zap logger. A "logger"
// attribute (gologshim's subsystem name) becomes the zap logger name.
type zapHandler struct {
	log    *zap.Logger
	min    slog.Level
	fields []zap.Field
	group  string
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		return zapcore.InfoLevel
	default:
		return zapcore.DebugLevel
	}
}

func (h *zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.min && h.log.Core().Enabled(zapLevel(l))
}

func (h *zapHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < h.min {
		return nil
	}
	ce := h.log.Check(zapLevel(r.Level), r.Message)
	if ce == nil {
		return nil
	}
	fields := append([]zap.Field{}, h.fields...)
	r.Attrs(func(a slog.Attr) bool {
		fields = appendAttr(fields, h.group, a)
		return true
	})
	ce.Write(fields...)
	return nil
}

func (h *zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.fields = append([]zap.Field{}, h.fields...)
	for _, a := range attrs {
		if a.Key == "logger" && h.group == "" {
			c.log = c.log.Named(a.Value.String())
			continue
		}
		c.fields = appendAttr(c.fields, h.group, a)
	}
	return &c
}

func (h *zapHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.group = h.group + name + "."
	return &c
}

func appendAttr(fields []zap.Field, prefix string, a slog.Attr) []zap.Field {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			fields = appendAttr(fields, p, g)
		}
		return fields
	}
	if a.Key == "" {
		return fields
	}
	return append(fields, zap.Any(prefix+a.Key, v.Any()))
}
