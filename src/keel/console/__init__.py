"""The web console: server-rendered pages (Jinja2 templates in templates/, htmx for partial
updates and uPlot for charts, both vendored under static/vendor/) over the same state and
store the admin API reads, served by keel itself with no build step and nothing fetched
from elsewhere at run time.
"""
