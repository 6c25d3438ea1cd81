package main

import (
	"embed"
	"io/fs"
	"net/http"
)

// web holds the sign-in page (also served as the WorkOS callback page) and
// its script and style: plain files, no build step.
//
//go:embed web
var webFiles embed.FS

// pageCSP allows only this origin's own script, style and API: no inline
// script, no framing, no form posts elsewhere.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *server) pageRoutes(mux *http.ServeMux) {
	web, _ := fs.Sub(webFiles, "web") // unreachable error: the folder is embedded
	page := func(name string) http.HandlerFunc {
		body, _ := fs.ReadFile(web, name)
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", pageCSP)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.Write(body)
		}
	}
	mux.HandleFunc("GET /{$}", page("index.html"))
	// One page serves both: its script finishes a WorkOS sign-in when it
	// finds itself at /en/callback.
	mux.HandleFunc("GET /en/callback", page("index.html"))
	static := http.StripPrefix("/static/", http.FileServerFS(web))
	mux.Handle("GET /static/{file}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("file") {
		case "app.js", "style.css":
			w.Header().Set("Content-Security-Policy", pageCSP)
			static.ServeHTTP(w, r)
		default:
			writeError(w, http.StatusNotFound, "not_found")
		}
	}))
}
