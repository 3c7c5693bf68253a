"""The web console: pages served as static files and a backend-for-frontend JSON API."""
