"""Portal views, one module per page family. Each view: check access, call a selector or a
service, render. Business rules live in the services they call."""
