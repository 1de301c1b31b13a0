"""collective.eduhub_alerts: real-time alerts for Plone sites."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

long_description = "\n\n".join(
    Path(name).read_text(encoding="utf-8") for name in ("README.md", "CHANGES.md")
)

setup(
    name="collective.eduhub_alerts",
    version="1.0.0a1.dev0",
    description="Real-time alerts for Plone: content and workflow events to browsers and Slack.",
    long_description=long_description,
    long_description_content_type="text/markdown",
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Environment :: Web Environment",
        "Framework :: Plone",
        "Framework :: Plone :: 6.2",
        "Framework :: Plone :: Addon",
        "License :: OSI Approved :: GNU General Public License v2 (GPLv2)",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
    keywords="Plone alerts notifications websocket slack redis",
    license="GPL-2.0-only",
    packages=find_namespace_packages("src", include=["collective.*"]),
    package_dir={"": "src"},
    include_package_data=True,
    zip_safe=False,
    python_requires=">=3.11",
    install_requires=[
        "Products.CMFPlone>=6.1",
        "plone.api",
        "plone.restapi>=9",
        "PyJWT>=2.8",
        "jsonschema>=4.18",
        "redis>=5",
    ],
    extras_require={
        "test": [
            "plone.app.testing",
            "plone.app.contenttypes",
            "plone.restapi[test]",
            "pytest",
            "pytest-plone",
            "zope.pytestlayer",
            "ZEO",
        ],
    },
    entry_points={
        "z3c.autoinclude.plugin": ["target = plone"],
    },
)
