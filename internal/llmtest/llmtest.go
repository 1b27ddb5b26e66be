// Package llmtest is a stand-in for an OpenAI-compatible chat completions
// endpoint, for tests of the llm processor. No model runs here: it speaks
// the request and response format of POST /v1/chat/completions on
// 127.0.0.1, checks the shape of each request and its Authorization
// header, and answers deterministically from the prompt: the last user
// message in upper case, or, when the request asks for a JSON schema, an
// object filling the schema's required properties from the prompt. It can
// be told to answer with an error status (429 with Retry-After, 500),
// slowly, or with a reply that is not JSON, and it counts requests.
//
// It is test-only: internal/archtest keeps it out of the flowctl binary.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what the server does instead of (or before) answering normally.
// The zero Fault answers normally.
type Fault struct {
	// Status, if not 0, is answered instead of a completion, with an
	// OpenAI-style error body carrying Message.
	Status  int
	Message string
	// RetryAfter, if not "", is sent as the Retry-After header.
	RetryAfter string
	// Delay is waited before answering (the request's context ends it).
	Delay time.Duration
	// Content, if not "", replaces the reply's message content (e.g. text
	// that is not JSON where JSON was asked for).
	Content string
}

// Request is what a client sent, as the server decoded it.
type Request struct {
	Model          string          `json:"model"`
	Messages       []Message       `json:"messages"`
	Temperature    *float64        `json:"temperature,omitempty"`
	MaxTokens      *int            `json:"max_tokens,omitempty"`
	ResponseFormat *ResponseFormat `json:"response_format,omitempty"`
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ResponseFormat is the request's response_format.
type ResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string         `json:"name"`
		Schema map[string]any `json:"schema"`
		Strict bool           `json:"strict"`
	} `json:"json_schema,omitempty"`
}

// Server is the stand-in endpoint. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to configure: http://127.0.0.1:port/v1.
	URL string

	key string
	srv *httptest.Server

	mu       sync.Mutex
	fault    func(n int, prompt string) Fault
	prompts  []string
	times    []time.Time
	inFlight int
	maxIn    int

	requests atomic.Int64 // every POST to chat/completions, answered or not
	rejected atomic.Int64 // malformed or unauthorised
}

// New starts a server on 127.0.0.1 that accepts requests carrying
// "Authorization: Bearer key" (any or none when key is ""). Close stops it.
func New(key string) *Server {
	s := &Server{key: key}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("llmtest: listen on loopback: %v", err))
	}
	s.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(s.serve)}}
	s.srv.Start()
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close stops the server and waits for its requests to end.
func (s *Server) Close() { s.srv.Close() }

// SetFault makes f decide, for the n-th request (from 1) and its last user
// message, what the server does. nil answers every request normally.
func (s *Server) SetFault(f func(n int, prompt string) Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Requests is how many chat completion requests arrived.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Rejected is how many of them were refused as malformed or unauthorised.
func (s *Server) Rejected() int64 { return s.rejected.Load() }

// MaxInFlight is the largest number of requests handled at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxIn
}

// Prompts returns the last user message of every request, in arrival order.
func (s *Server) Prompts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.prompts...)
}

// Times returns when every request arrived.
func (s *Server) Times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times...)
}

// Upper is the reply the server gives to prompt without a schema.
func Upper(prompt string) string { return strings.ToUpper(prompt) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" {
		s.fail(w, http.StatusNotFound, "invalid_request_error", "unknown path "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		s.fail(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST")
		return
	}
	n := int(s.requests.Add(1))
	if s.key != "" && r.Header.Get("Authorization") != "Bearer "+s.key {
		s.rejected.Add(1)
		s.fail(w, http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided.")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		s.rejected.Add(1)
		s.fail(w, http.StatusBadRequest, "invalid_request_error", "Content-Type must be application/json, got "+ct)
		return
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 8<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.rejected.Add(1)
		s.fail(w, http.StatusBadRequest, "invalid_request_error", "request body: "+err.Error())
		return
	}
	if msg := check(&req); msg != "" {
		s.rejected.Add(1)
		s.fail(w, http.StatusBadRequest, "invalid_request_error", msg)
		return
	}
	prompt := req.Messages[len(req.Messages)-1].Content

	s.mu.Lock()
	s.prompts = append(s.prompts, prompt)
	s.times = append(s.times, time.Now())
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	fault := s.fault
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	var f Fault
	if fault != nil {
		f = fault(n, prompt)
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Status != 0 {
		msg := f.Message
		if msg == "" {
			msg = http.StatusText(f.Status)
		}
		s.fail(w, f.Status, "server_error", msg)
		return
	}
	content := f.Content
	if content == "" {
		content = reply(&req, prompt)
	}
	resp := map[string]any{
		"id":      fmt.Sprintf("chatcmpl-stand-in-%d", n),
		"object":  "chat.completion",
		"created": 1767225600,
		"model":   req.Model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": content, "refusal": nil},
			"finish_reason": "stop",
		}},
		"usage": map[string]any{"prompt_tokens": len(strings.Fields(prompt)), "completion_tokens": len(strings.Fields(content)), "total_tokens": len(strings.Fields(prompt)) + len(strings.Fields(content))},
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// check returns what is wrong with a request's shape, "" if nothing.
func check(req *Request) string {
	switch {
	case req.Model == "":
		return "you must provide a model parameter"
	case len(req.Messages) == 0:
		return "messages must not be empty"
	}
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "user", "assistant", "developer":
		default:
			return fmt.Sprintf("messages[%d].role %q is not a valid role", i, m.Role)
		}
	}
	if last := req.Messages[len(req.Messages)-1]; last.Role != "user" {
		return "the last message must be the user's"
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "text", "json_object":
		case "json_schema":
			if rf.JSONSchema == nil || rf.JSONSchema.Name == "" || rf.JSONSchema.Schema == nil {
				return "response_format.json_schema needs a name and a schema"
			}
			if t, _ := rf.JSONSchema.Schema["type"].(string); t != "object" {
				return "response_format.json_schema.schema must be of type object"
			}
		default:
			return fmt.Sprintf("response_format.type %q is not one of text, json_object, json_schema", rf.Type)
		}
	}
	return ""
}

// reply computes the deterministic answer to prompt: its upper case, or
// an object for a JSON schema (string properties: the upper case, integer
// and number: the prompt's length, boolean: true, others: null), or
// {"text": upper case} for json_object.
func reply(req *Request, prompt string) string {
	rf := req.ResponseFormat
	if rf == nil || rf.Type == "text" {
		return Upper(prompt)
	}
	if rf.Type == "json_object" || rf.JSONSchema == nil {
		b, _ := json.Marshal(map[string]any{"text": Upper(prompt)})
		return string(b)
	}
	props, _ := rf.JSONSchema.Schema["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	sort.Strings(names)
	obj := map[string]any{}
	for _, k := range names {
		p, _ := props[k].(map[string]any)
		switch t, _ := p["type"].(string); t {
		case "string":
			obj[k] = Upper(prompt)
		case "integer", "number":
			obj[k] = len(prompt)
		case "boolean":
			obj[k] = true
		default:
			obj[k] = nil
		}
	}
	b, _ := json.Marshal(obj)
	return string(b)
}

// fail answers an OpenAI-style error.
func (s *Server) fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}
