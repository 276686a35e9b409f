"""A scheduler that exists only for the tests: added to faxflow through an entry point, as a site package would."""
