"""Disk layouts: the layout planned from facts and host data (``plan``), its disko rendering
(``disko``), and laying it out on a blank disk (``apply``)."""
