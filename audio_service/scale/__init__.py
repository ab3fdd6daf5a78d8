"""Scale-out on Ray Serve: the deployment, and the proxy middleware that retries requests of a lost replica."""
