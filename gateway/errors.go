package main

import (
	"context"
	"math"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorHandler answers as grpc-gateway's default does (the HTTP status of the gRPC code,
// per google.rpc, and the google.rpc.Status as JSON), and adds Retry-After where the
// service said when to retry (a google.rpc.RetryInfo detail, as overload refusals carry).
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if s, ok := status.FromError(err); ok {
		for _, detail := range s.Details() {
			if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
				seconds := math.Ceil(info.GetRetryDelay().AsDuration().Seconds())
				w.Header().Set("Retry-After", strconv.Itoa(int(max(seconds, 1))))
			}
		}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// routingErrorHandler answers a method the path does not serve with 405 and an Allow-less
// google.rpc.Status body. grpc-gateway's default turns it into UNIMPLEMENTED, which is HTTP 501,
// a server error, for what is the caller's mistake (fuzzing found it with TRACE).
func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus != http.StatusMethodNotAllowed && httpStatus != http.StatusNotImplemented {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		return
	}
	body, err := m.Marshal(status.New(codes.Unimplemented, r.Method+" is not served at "+r.URL.Path).Proto())
	if err != nil {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", m.ContentType(nil))
	w.WriteHeader(http.StatusMethodNotAllowed)
	_, _ = w.Write(body)
}
