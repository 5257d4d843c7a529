"""The gateway's logic, free of HTTP: auth, sessions, reports, job hosting."""
