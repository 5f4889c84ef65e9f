"""Learning-curve plots: one job's curves, or one metric of several jobs on one chart.

``labels`` names the jobs of a comparison by what differs between their specs; ``curves``
turns a job and its recorded epochs into panels of series (plain data); ``render`` draws
them with matplotlib (imported on the first render, never by the API at start-up);
``router`` serves them as PNG or SVG.
"""
