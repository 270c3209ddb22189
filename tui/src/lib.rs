//! `storefront-console`: the ratatui ops console. Not built yet: see the console issue.
