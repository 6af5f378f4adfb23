"""The web console in a real browser (Debian's headless Chromium through WebDriver)
against a real 3-broker cluster: every page opens; a topic is created through the page;
records produced by a real client (confluent-kafka) are browsed; a consumer group's lag
falls to 0 on its page; a killed broker leaves the ISR shown on the topic page. A
screenshot of each page is saved (GREGOR_ARTIFACTS, default a temp directory)."""

import os
import tempfile
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from gregor_cluster import GregorCluster, wait_until

ARTIFACTS = Path(os.environ.get("GREGOR_ARTIFACTS", tempfile.mkdtemp(prefix="gregor-console-")))


@pytest.fixture(scope="module")
def cluster():
    with GregorCluster(brokers=3, metrics=True, console=True,
                       broker_config={"offsets.topic.num.partitions": "3", "replica.lag.time.max.ms": "3000"}) as c:
        yield c


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="gregor-chromium-")
    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1400,1000"]:
        o.add_argument(arg)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def console(c):
    return f"http://127.0.0.1:{c.metrics_ports[1]}"


def shot(d, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / f"console-{name}.png"))


def text(d, element_id):
    """The element's text; "" while the page is being replaced."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    try:
        return d.find_element(By.ID, element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def test_console_pages_in_a_browser(cluster, browser):
    d = browser
    base = console(cluster)
    d.get(base + "/")
    assert int(text(d, "controller")) in cluster.ports
    assert len(d.find_elements(By.CSS_SELECTOR, "#brokers tr")) == 1 + 3
    shot(d, "overview")

    d.get(base + "/topics")
    d.find_element(By.ID, "new-name").send_keys("web")
    d.find_element(By.ID, "new-partitions").send_keys("3")
    d.find_element(By.ID, "new-rf").send_keys("3")
    d.find_element(By.ID, "new-configs").send_keys("retention.ms=3600000")
    d.find_element(By.ID, "create").click()
    wait_until(lambda: "Created topic web" in text(d, "result"), 30, "the topic to be created")
    # The API's validation, through the page: a second create is refused.
    d.find_element(By.ID, "new-name").send_keys("web")
    d.find_element(By.ID, "create").click()
    wait_until(lambda: "TopicAlreadyExists" in text(d, "result"), 30, "the duplicate create to be refused")
    shot(d, "topics")

    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(30):
        p.produce("web", key=f"k{i}", value=f'{{"n": {i}}}', partition=i % 3, headers={"src": b"selenium"})
    assert p.flush(30) == 0

    d.get(base + "/topics/web")
    rows = d.find_elements(By.CSS_SELECTOR, "#partitions tr")[1:]
    assert len(rows) == 3
    cells = [r.find_elements(By.TAG_NAME, "td") for r in rows]
    assert all(c[6].text == "10" for c in cells), [c[6].text for c in cells]  # log end offsets
    assert all(len(c[3].text.split(",")) == 3 for c in cells)  # full ISR
    assert "retention.ms" in text(d, "configs")
    # A config change through the page, and one the API's validation refuses.
    d.find_element(By.ID, "config-key").send_keys("max.message.bytes")
    d.find_element(By.ID, "config-value").send_keys("200000")
    d.find_element(By.ID, "set-config").click()
    wait_until(lambda: "max.message.bytes" in text(d, "configs") and "200000" in text(d, "configs"),
               30, "the config change to show")
    d.find_element(By.ID, "config-key").send_keys("max.message.bytes")
    d.find_element(By.ID, "config-value").send_keys("huge")
    d.find_element(By.ID, "set-config").click()
    wait_until(lambda: "InvalidConfig" in text(d, "result"), 30, "the bad value to be refused")
    shot(d, "topic")

    d.get(base + "/topics/web/messages?partition=1&offset=2&format=json")
    rows = d.find_elements(By.CSS_SELECTOR, "#messages tr")[1:]
    assert len(rows) == 8
    first = rows[0].find_elements(By.TAG_NAME, "td")
    assert first[0].text == "2" and first[2].text == "k7" and '"n": 7' in first[3].text and "src=selenium" in first[4].text
    shot(d, "messages")
    d.get(base + f"/topics/web/messages?partition=1&timestamp={int(time.time() * 1000) + 3600_000}")
    assert len(d.find_elements(By.CSS_SELECTOR, "#messages tr")) == 1  # nothing after a future time

    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "web-readers",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["web"])
    got = 0
    deadline = time.time() + 60
    while got < 15 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and m.error() is None:
            got += 1
    c.commit(asynchronous=False)
    d.get(base + "/groups")
    assert "web-readers" in text(d, "groups")
    d.get(base + "/groups/web-readers")
    shot(d, "group-lagging")
    while got < 30 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and m.error() is None:
            got += 1
    c.commit(asynchronous=False)

    def lag_zero():
        d.get(base + "/groups/web-readers")
        rows = [l.split() for l in text(d, "group-describe").splitlines() if l.startswith("web-readers ")]
        rows = [r for r in rows if len(r) > 5 and r[1] == "web"]  # GROUP TOPIC PARTITION CURRENT END LAG
        return len(rows) == 3 and all(r[5] == "0" for r in rows)
    wait_until(lag_zero, 30, "the group's lag to fall to 0 on its page")
    shot(d, "group")
    c.close()
    # Resetting a group with an active member is refused; an empty group's is done.
    d.find_element(By.ID, "reset-topic").send_keys("web")
    d.find_element(By.ID, "reset-partition").send_keys("0")
    d.find_element(By.ID, "reset-offset").send_keys("3")
    d.find_element(By.ID, "reset").click()
    wait_until(lambda: "Reset web-readers on web-0 to offset 3" in text(d, "result"), 30, "the reset")

    victim = 3
    cluster.kill(victim)

    def isr_shrank():
        d.get(base + "/topics/web")
        isrs = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#partitions .isr")]
        return len(isrs) == 3 and all(str(victim) not in isr.split(",") for isr in isrs)
    wait_until(isr_shrank, 60, "the killed broker to leave the ISR on the topic page")
    shot(d, "topic-isr-shrunk")
    d.get(base + "/")
    assert int(text(d, "urp-count")) >= 3
    shot(d, "overview-under-replicated")
    spark = d.find_element(By.ID, "spark-messages")
    assert spark.get_attribute("naturalWidth") not in (None, "0")
